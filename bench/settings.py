"""The benchmark stack's settings: the product's, plus the naive path it is compared with.

The naive path is what the platform replaces: one Celery task per notification that pushes its
id with ``async_to_sync(group_send)`` (``bench.tasks``), to a socket that loads each one with an
ORM ``.get()`` (``bench.consumers``, at ``/ws/naive/notifications/``). It exists only in the
benchmark's stack.
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
WEBSOCKET_URLPATTERNS = "bench.routing.websocket_urlpatterns"
