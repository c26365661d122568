"""Fail fast, with the command that fixes it, when RabbitMQ or Redis is not reachable, or when
RabbitMQ holds an older kind of task queue under one of our names. Warn, with the fix, when
RabbitMQ's management API (Flower's queue lengths) is not: Flower works without it."""

import redis
from amqp.exceptions import PreconditionFailed
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from kombu import Connection

from procurement_system.queues import management_api_problem

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
        self._check_queues()
        self.stdout.write("RabbitMQ and Redis are reachable.")
        self._check_management_api()

    def _check_queues(self) -> None:
        """Declare the task queues and the dead-letter queue as the workers will. A queue left
        by an earlier version as a classic queue cannot become a quorum queue in place; say how
        to replace it instead of letting every worker fail at start."""
        with Connection(settings.CELERY_BROKER_URL, connect_timeout=3) as connection:
            for queue in [*settings.CELERY_TASK_QUEUES, settings.DEAD_LETTER_QUEUE]:
                try:
                    queue.bind(connection.channel()).declare()
                except PreconditionFailed as error:
                    raise CommandError(
                        f"RabbitMQ has a queue {queue.name!r} of another kind ({error}). Once "
                        f"no worker runs and it is empty, delete it with: rabbitmqctl "
                        f"delete_queue {queue.name}"
                    ) from None

    def _check_management_api(self) -> None:
        problem = management_api_problem()
        if problem is not None:
            self.stderr.write(
                self.style.WARNING(f"Warning: {problem}\n  Flower works, without queue lengths.")
            )
