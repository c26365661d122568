"""The one Celery application of the project.

Configuration lives in Django settings under the ``CELERY_`` namespace; tasks are discovered in
each app's ``tasks.py``. Tasks are ``PlatformTask``: Celery's ``DjangoTask`` (``delay_on_commit``)
whose after-commit publish never turns a committed change into an error.
"""

import os

from celery import Celery
from celery.contrib.django.task import DjangoTask
from celery.signals import worker_init
from django.db import transaction

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "procurement_system.settings")


class PlatformTask(DjangoTask):
    """Publishing after commit is ``robust``: when the broker cannot take the message, the
    failure is logged and the change stays committed and reported as done. Nothing is lost by
    that: what the message would have started is a state in the database (a ``pending`` pickup,
    a completed one without a receipt), and ``requeue_stalled_task`` publishes it again."""

    def delay_on_commit(self, *args, **kwargs) -> None:
        self.apply_async_on_commit(args, kwargs)

    def apply_async_on_commit(self, *args, **kwargs) -> None:
        def publish() -> None:
            self.apply_async(*args, **kwargs)

        # Django names the callback by its __qualname__ when it logs the failure.
        publish.__qualname__ = f"publish of {self.name}"
        transaction.on_commit(publish, robust=True)


app = Celery("procurement_system", task_cls=PlatformTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.conf.include = ["procurement_system.tasks"]


@worker_init.connect
def declare_queues(sender, **kwargs) -> None:
    """Before it consumes, every worker declares all the task queues (not only its own) and the
    dead-letter queue, which no worker consumes: a message dead-lettered always has somewhere to
    go, and delayed delivery can bind every queue whichever worker starts first."""
    from django.conf import settings

    with sender.app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in [*settings.CELERY_TASK_QUEUES, settings.DEAD_LETTER_QUEUE]:
            queue.bind(channel).declare()
