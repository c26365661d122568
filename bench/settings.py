"""The benchmark stack's settings: the product's, plus the naive path it is compared with.

The naive path (``bench.tasks``) is what the platform replaces: one Celery task per notification
that pushes it with ``async_to_sync(group_send)``. It exists only in the benchmark's stack.
"""

from procurement_system.settings import *  # noqa: F403
from procurement_system.settings import CELERY_TASK_ROUTES, INSTALLED_APPS, QUEUE_NOTIFICATIONS

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]
CELERY_TASK_ROUTES = {
    **CELERY_TASK_ROUTES,
    "bench.tasks.naive_push_task": {
        "queue": QUEUE_NOTIFICATIONS,
        "routing_key": QUEUE_NOTIFICATIONS,
    },
}
