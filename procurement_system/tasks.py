"""Project-wide maintenance tasks (registered through ``include`` in the Celery app)."""

from celery import shared_task
from django.conf import settings

from procurement_system.cleanup import delete_expired_cache_entries


@shared_task(soft_time_limit=120, time_limit=180)
def purge_task_results_task() -> int:
    """Periodic (by default hourly): delete task results older than ``CELERY_RESULT_EXPIRES`` from
    the results cache table, in batches. Returns how many were deleted.
    """
    table = settings.CACHES[settings.CELERY_RESULTS_CACHE_ALIAS]["LOCATION"]
    return delete_expired_cache_entries(table)
