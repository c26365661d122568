"""Each task queue and the dead-letter queue: messages waiting and consumers."""

import json
from dataclasses import asdict

from django.core.management.base import BaseCommand, CommandError

from pickups.management.commands.check_services import HOW_TO_START
from procurement_system.queues import DEAD_LETTER, BrokerUnavailable, queue_states

MISSING = "missing: not declared yet (every worker declares all the queues when it starts)"


class Command(BaseCommand):
    help = (
        "Show each task queue and the dead-letter queue with the messages ready in it and its "
        "consumers, as RabbitMQ counts them (names carry CELERY_QUEUE_PREFIX)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="Print a JSON list instead."
        )

    def handle(self, *args, as_json: bool = False, **options) -> None:
        try:
            states = queue_states()
        except BrokerUnavailable as error:
            raise CommandError(f"{error}\n  Start it with: {HOW_TO_START['RabbitMQ']}") from None
        if as_json:
            self.stdout.write(json.dumps([asdict(state) for state in states], indent=2))
            return
        width = max(len("queue"), *(len(state.name) for state in states))
        self.stdout.write(f"{'queue':<{width}}  {'messages':>8}  {'consumers':>9}")
        for state in states:
            if not state.exists:
                self.stdout.write(f"{state.name:<{width}}  {MISSING}")
                continue
            line = f"{state.name:<{width}}  {state.messages:>8}  {state.consumers:>9}"
            if state.role == DEAD_LETTER and state.messages:
                line += "  (manage.py requeue_dead_letters puts them back)"
            self.stdout.write(line)
