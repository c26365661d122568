"""Fail fast, with the command that fixes it, when RabbitMQ or Redis is not reachable."""

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from kombu import Connection

HOW_TO_START = {
    "RabbitMQ": "rabbitmq-server -detached",
    "Redis": 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no',
}


class Command(BaseCommand):
    help = "Check that the RabbitMQ broker and the Redis channel layer answer."

    def handle(self, *args, **options) -> None:
        failures = []
        try:
            with Connection(settings.CELERY_BROKER_URL, connect_timeout=3) as connection:
                connection.ensure_connection(max_retries=1)
        except Exception as error:
            failures.append(("RabbitMQ", settings.CELERY_BROKER_URL, error))
        try:
            redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3).ping()
        except Exception as error:
            failures.append(("Redis", settings.REDIS_URL, error))
        for name, url, error in failures:
            self.stderr.write(
                f"{name} is not reachable at {url}: {error}\n  Start it with: {HOW_TO_START[name]}"
            )
        if failures:
            raise CommandError(f"{' and '.join(f[0] for f in failures)} unavailable.")
        self.stdout.write("RabbitMQ and Redis are reachable.")
