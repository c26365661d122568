"""Assign pickups that wait for a vendor again now, as the admin's action does."""

from django.core.management.base import BaseCommand, CommandError

from pickups.operations import rerun_assignments


class Command(BaseCommand):
    help = (
        "Re-run the vendor assignment of each pickup given: a pending one has its assignment "
        "task published again, an unassigned one is retried at once. Any other status is "
        "refused (invalid_transition) and left as it was. Exits non-zero if any pickup failed."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("pickup_ids", nargs="+", type=int, metavar="PICKUP_ID")

    def handle(self, *args, pickup_ids: list[int], **options) -> None:
        results = rerun_assignments(pickup_ids)
        for result in results:
            if result.ok:
                task = f" (assignment task {result.task_id})" if result.task_id else ""
                self.stdout.write(f"#{result.pickup_id} {result.outcome}{task}")
            else:
                self.stderr.write(f"#{result.pickup_id} {result.error.code}: {result.error}")
        failed = sum(not result.ok for result in results)
        if failed:
            raise CommandError(f"{failed} of {len(results)} pickups failed.")
