"""The platform's periodic tasks and their default schedules.

``manage.py setup_periodic_tasks`` writes them as django-celery-beat rows, which beat's database
scheduler reads; operators then change a schedule, or switch a task off, in the admin
(Periodic tasks). The command never undoes such a change unless asked to with ``--reset``.
"""

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class PeriodicTask:
    name: str
    task: str
    every_seconds: int | None = None
    #: crontab fields (minute, hour, ...) for a task that runs at fixed times, in UTC
    crontab: dict[str, str] | None = None

    @property
    def expire_seconds(self) -> int | None:
        """A run still queued when the next one is due is dropped: the next does its work."""
        return self.every_seconds


def periodic_tasks() -> list[PeriodicTask]:
    return [
        PeriodicTask(
            "Withdraw unanswered offers",
            "pickups.tasks.expire_offers_task",
            every_seconds=settings.SCHEDULE_OFFER_SWEEP_SECONDS,
        ),
        PeriodicTask(
            "Retry unassigned pickups",
            "pickups.tasks.retry_unassigned_task",
            every_seconds=settings.SCHEDULE_RETRY_SWEEP_SECONDS,
        ),
        PeriodicTask(
            "Expire pickups whose window ended",
            "pickups.tasks.expire_pickups_task",
            every_seconds=settings.SCHEDULE_EXPIRY_SWEEP_SECONDS,
        ),
        PeriodicTask(
            "Requeue stalled work",
            "pickups.tasks.requeue_stalled_task",
            every_seconds=settings.SCHEDULE_STALL_SWEEP_SECONDS,
        ),
        PeriodicTask(
            "Relay domain events",
            "pickups.tasks.relay_events_task",
            every_seconds=settings.SCHEDULE_EVENTS_RELAY_SECONDS,
        ),
        PeriodicTask(
            "Delete old read notifications",
            "notifications.tasks.purge_read_notifications_task",
            every_seconds=settings.SCHEDULE_CLEANUP_MINUTES * 60,
        ),
        PeriodicTask(
            "Delete old location points",
            "pickups.tasks.purge_location_points_task",
            every_seconds=settings.SCHEDULE_CLEANUP_MINUTES * 60,
        ),
        PeriodicTask(
            "Delete expired task results",
            "procurement_system.tasks.purge_task_results_task",
            every_seconds=settings.SCHEDULE_CLEANUP_MINUTES * 60,
        ),
        PeriodicTask(
            "Delete old published domain events",
            "pickups.tasks.purge_published_events_task",
            every_seconds=settings.SCHEDULE_CLEANUP_MINUTES * 60,
        ),
        PeriodicTask(
            "Send vendors' daily digest",
            "pickups.tasks.send_vendor_digests_task",
            crontab={"minute": "0", "hour": str(settings.SCHEDULE_DIGEST_HOUR)},
        ),
    ]
