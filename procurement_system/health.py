"""Liveness (``/health/``) and readiness (``/ready/``) of the platform.

``/health/`` says the web process is up and serving; it looks at nothing else, so a restart is
never triggered by a dependency's trouble. ``/ready/`` checks each dependency the platform needs
to serve pickups end to end: the database, the task results' cache table, RabbitMQ, the channel
layer's Redis and at least one Celery worker. Every check is bounded by
``READY_CHECK_TIMEOUT_SECONDS`` and they run at once, so the endpoint answers in about that
long (plus a second at most) even with everything down.

Each ``check_*`` function is a selector of one fact; the view only gathers them.
"""

import copy
import math
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Any

import redis
from django.conf import settings
from django.core.cache import caches
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import load_backend
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from kombu import Connection

Check = dict[str, Any]

# The whole endpoint waits this much longer than one check may take, for the threads' start and
# the checks' own bookkeeping; a check still running then is reported as timed out.
_GRACE_SECONDS = 1.0
_PROBE_KEY = "ready-probe"


def check_database() -> Check:
    """The default database answers a query."""
    with _database_probe() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {}


def check_cache() -> Check:
    """The cache the task results are kept in (the ``celery_results_cache`` table made by
    ``createcachetable``) can be read."""
    with _database_probe():
        caches[settings.CELERY_RESULTS_CACHE_ALIAS].get(_PROBE_KEY)
    return {}


@contextmanager
def _database_probe() -> Iterator[BaseDatabaseWrapper]:
    """A connection to the default database for this thread alone, closed afterwards, made from
    the settings as they are now; on PostgreSQL it gives up connecting after the check's timeout,
    so a database that does not answer cannot hold the thread for long."""
    config = copy.deepcopy(settings.DATABASES[DEFAULT_DB_ALIAS])
    config = connections.configure_settings({DEFAULT_DB_ALIAS: config})[DEFAULT_DB_ALIAS]
    if "postgresql" in config["ENGINE"]:
        timeout = math.ceil(settings.READY_CHECK_TIMEOUT_SECONDS)
        config["OPTIONS"] = {**config["OPTIONS"], "connect_timeout": timeout}
    connection = load_backend(config["ENGINE"]).DatabaseWrapper(config, DEFAULT_DB_ALIAS)
    # For this thread only (Django's connections are per thread): the cache's queries use it too.
    connections[DEFAULT_DB_ALIAS] = connection
    try:
        yield connection
    finally:
        connection.close()


def check_rabbitmq() -> Check:
    """The broker takes a connection; with it, each task queue's ready messages and consumers
    (a queue not declared yet, before any worker started, shows as null)."""
    timeout = settings.READY_CHECK_TIMEOUT_SECONDS
    queues: dict[str, dict[str, int] | None] = {}
    with Connection(settings.CELERY_BROKER_URL, connect_timeout=timeout) as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
        for queue in _task_queues():
            channel = connection.channel()
            try:
                _, messages, consumers = channel.queue_declare(queue=queue, passive=True)
                queues[queue] = {"messages": messages, "consumers": consumers}
            except connection.channel_errors:  # NOT_FOUND closes the channel
                queues[queue] = None
            finally:
                try:
                    channel.close()
                except Exception:  # already closed by the broker
                    pass
    return {"queues": queues}


def check_redis() -> Check:
    """The channel layer's Redis (``REDIS_URL``) answers PING."""
    timeout = settings.READY_CHECK_TIMEOUT_SECONDS
    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=timeout, socket_timeout=timeout
    )
    try:
        client.ping()
    finally:
        client.close()
    return {}


def check_workers() -> Check:
    """Which Celery workers of this platform answer, and which of its task queues have none.

    One broadcast (``active_queues``) both pings the workers and tells what each consumes; the
    workers of another platform sharing the broker (other queue names) are left out. Ready needs
    one worker at least: a queue without one is listed, its work waits in RabbitMQ until a
    worker comes, and the web process can still take requests.
    """
    from procurement_system.celery import app

    timeout = settings.READY_CHECK_TIMEOUT_SECONDS
    ours = _task_queues()
    with Connection(settings.CELERY_BROKER_URL, connect_timeout=timeout) as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
        replies = app.control.inspect(timeout=timeout, connection=connection).active_queues()
    workers = {
        name: sorted(q["name"] for q in queues if q["name"] in ours)
        for name, queues in (replies or {}).items()
    }
    workers = {name: queues for name, queues in sorted(workers.items()) if queues}
    served = {queue for queues in workers.values() for queue in queues}
    result: Check = {
        "workers": workers,
        "queues_without_worker": [q for q in ours if q not in served],
    }
    if not workers:
        raise _CheckFailed(f"no worker answered within {timeout:g} s", result)
    return result


CHECKS: dict[str, Callable[[], Check]] = {
    "database": check_database,
    "cache": check_cache,
    "rabbitmq": check_rabbitmq,
    "redis": check_redis,
    "workers": check_workers,
}


def readiness() -> dict[str, Any]:
    """Run every check at once; ``{"status": "ok" | "fail", "checks": {name: result}}``."""
    executor = ThreadPoolExecutor(max_workers=len(CHECKS), thread_name_prefix="ready")
    try:
        futures = {name: executor.submit(_timed, check) for name, check in CHECKS.items()}
        wait(futures.values(), timeout=settings.READY_CHECK_TIMEOUT_SECONDS + _GRACE_SECONDS)
    finally:
        # A check that hangs past its own timeouts finishes in the background; nobody waits.
        executor.shutdown(wait=False, cancel_futures=True)
    checks = {
        name: future.result()
        if future.done()
        else {"status": "fail", "error": "timed out", "latency_ms": None}
        for name, future in futures.items()
    }
    ok = all(check["status"] == "ok" for check in checks.values())
    return {"status": "ok" if ok else "fail", "checks": checks}


class _CheckFailed(Exception):
    """A check that reached its dependency but did not like the answer; carries the details."""

    def __init__(self, message: str, details: Check) -> None:
        super().__init__(message)
        self.details = details


def _timed(check: Callable[[], Check]) -> Check:
    started = time.perf_counter()
    problem: str | None = None
    try:
        details = check()
    except _CheckFailed as failed:
        details, problem = failed.details, str(failed)
    except Exception as error:
        details, problem = {}, _describe(error)
    result: Check = {
        "status": "ok" if problem is None else "fail",
        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        **details,
    }
    if problem is not None:
        result["error"] = problem
    return result


_CREDENTIALS = re.compile(r"(//[^/@\s:]*:)[^@\s]*@")


def _describe(error: Exception) -> str:
    """The error's type and first line, any password in a URL blanked out (the endpoint needs no
    sign-in)."""
    first_line = (str(error).strip().splitlines() or [""])[0]
    text = f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__
    return _CREDENTIALS.sub(r"\1***@", text)[:300]


def _task_queues() -> list[str]:
    """The queues the platform's workers consume (the dead-letter queue has no consumer)."""
    return [queue.name for queue in settings.CELERY_TASK_QUEUES]


# --- views ----------------------------------------------------------------------------------


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """The web process is up and serving (dependencies are not checked here)."""
    return JsonResponse({"status": "ok"})


@require_GET
@never_cache
def ready(request: HttpRequest) -> JsonResponse:
    """Every dependency answers: 200 with each check's result, else 503 with the same body."""
    report = readiness()
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)
