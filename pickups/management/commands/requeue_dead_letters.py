"""Put dead-lettered task messages back on the queues they died in."""

from django.core.management.base import BaseCommand, CommandError

from pickups.management.commands.check_services import HOW_TO_START
from procurement_system.queues import (
    BrokerUnavailable,
    QueueMissing,
    RequeueFailed,
    RequeueReport,
    dead_letter_queue_name,
    requeue_dead_letters,
)


class Command(BaseCommand):
    help = (
        "Move dead-lettered task messages back to the task queue each one died in, oldest "
        "first, each published again (with a publisher confirm) before its dead-letter copy is "
        "removed. Fix the cause first: a poison message only dies again."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--queue",
            help="Only the messages that died in this task queue (assignments, notifications, "
            "maintenance).",
        )
        parser.add_argument("--limit", type=int, help="Move at most this many messages.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would move; change nothing."
        )

    def handle(self, *args, queue=None, limit=None, dry_run=False, **options) -> None:
        if limit is not None and limit < 1:
            raise CommandError("--limit must be at least 1.")
        try:
            report = requeue_dead_letters(queue=queue, limit=limit, dry_run=dry_run)
        except ValueError as error:
            raise CommandError(str(error)) from None
        except BrokerUnavailable as error:
            raise CommandError(f"{error}\n  Start it with: {HOW_TO_START['RabbitMQ']}") from None
        except QueueMissing as error:
            self.stdout.write(f"{error} No worker has started yet: nothing to move.")
            return
        except RequeueFailed as failed:
            self._print(failed.report)
            raise CommandError(
                f"Stopped: publishing a message again failed ({failed}). It and every message "
                f"after it are still in {dead_letter_queue_name()}."
            ) from None
        self._print(report)

    def _print(self, report: RequeueReport) -> None:
        verb = "Would move" if report.dry_run else "Moved"
        source = dead_letter_queue_name()
        if not report.moved:
            self.stdout.write(f"{verb} no messages from {source}.")
        else:
            total = report.total_moved
            plural = "" if total == 1 else "s"
            self.stdout.write(
                f"{verb} {total} message{plural} from {source} back to the queue each died in:"
            )
            width = max(len(name) for name in report.moved)
            for name, count in sorted(report.moved.items()):
                self.stdout.write(f"  {name:<{width}}  {count:>6}")
        for reason, count in sorted(report.left.items()):
            self.stdout.write(f"Left in {source}: {count} {reason}.")
