"""The one Celery application of the project.

Configuration lives in Django settings under the ``CELERY_`` namespace; tasks are discovered in
each app's ``tasks.py``. Tasks are ``PlatformTask``: Celery's ``DjangoTask`` (``delay_on_commit``)
whose after-commit publish never turns a committed change into an error.
"""

import os

from celery import Celery
from celery.contrib.django.task import DjangoTask
from celery.signals import (
    before_task_publish,
    setup_logging,
    task_postrun,
    task_prerun,
    worker_init,
)
from django.db import OperationalError, close_old_connections, transaction

from procurement_system import observability

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


# The options of the tasks that act on one object: a Django database ``OperationalError`` (the
# database briefly unavailable) retries the task with backoff; any other exception fails it.
RETRYING = {
    "autoretry_for": (OperationalError,),
    "retry_backoff": True,
    "retry_backoff_max": 30,
    "max_retries": 8,
    "soft_time_limit": 30,
    "time_limit": 60,
}

app = Celery("procurement_system", task_cls=PlatformTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.conf.include = ["procurement_system.tasks"]

# Logs: the workers and beat log like the web process (settings.LOGGING), and a task published
# while a pickup is in the log context carries its correlation id into the task's own logs.
setup_logging.connect(observability.configure_worker_logging, weak=False)
before_task_publish.connect(observability.add_context_headers, weak=False)
task_prerun.connect(observability.enter_task_context, weak=False)
task_postrun.connect(observability.leave_task_context, weak=False)


# Database connections: Celery's Django fixup closes every connection before and after each task
# (unless CELERY_DB_REUSE_MAX says otherwise), so each task paid for a new PostgreSQL connection,
# a server process forked for it. The settings make the fixup keep them; these handlers do what
# Django does around each request instead: drop a connection that failed or is older than
# CONN_MAX_AGE (SQLite's 0: after every task, as before).
@task_prerun.connect(weak=False)
@task_postrun.connect(weak=False)
def recycle_database_connections(sender=None, **kwargs) -> None:
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return  # run inside its caller (the tests): the caller's connection, not ours to close
    close_old_connections()


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
