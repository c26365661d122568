"""Create or update the platform's periodic tasks for Celery beat (run by ``make run``)."""

from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule
from django_celery_beat.models import PeriodicTask as BeatTask

from procurement_system.schedule import PeriodicTask, periodic_tasks

# A beat task has exactly one kind of schedule.
NO_SCHEDULE = {"interval": None, "crontab": None, "solar": None, "clocked": None}


class Command(BaseCommand):
    help = (
        "Create the platform's periodic tasks for Celery beat, or bring existing ones up to date. "
        "Schedules and on/off switches that operators changed in the admin are kept unless "
        "--reset is given. Safe to run any number of times."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Also put every schedule back to its default and switch every task on.",
        )

    @transaction.atomic
    def handle(self, *args, reset: bool = False, **options) -> None:
        for definition in periodic_tasks():
            schedule = _schedule(definition)
            row = BeatTask.objects.filter(name=definition.name).first()
            if row is None:
                row = BeatTask(name=definition.name, **schedule)
                verb = "created"
            elif reset:
                for field, value in {**NO_SCHEDULE, **schedule}.items():
                    setattr(row, field, value)
                row.enabled = True
                verb = "reset"
            else:
                verb = "kept"
            row.task = definition.task
            row.expire_seconds = definition.expire_seconds
            row.save()
            self.stdout.write(f"{verb:8} {row}")


def _schedule(definition: PeriodicTask) -> dict:
    if definition.every_seconds is not None:
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=definition.every_seconds, period=IntervalSchedule.SECONDS
        )
        return {"interval": interval}
    fields = {"minute": "*", "hour": "*", "day_of_week": "*", "day_of_month": "*"}
    fields |= {"month_of_year": "*", "timezone": "UTC", **(definition.crontab or {})}
    crontab, _ = CrontabSchedule.objects.get_or_create(**fields)
    return {"crontab": crontab}
