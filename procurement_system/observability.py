"""Log context: one correlation id per pickup, from the request that touches it through every
Celery task to every notification.

The context lives in a ``contextvars.ContextVar``, so each request, socket frame and task sees
its own. The adapters open a fresh one (``log_context``: the HTTP middleware, each socket frame,
each task through the Celery signals below); the services add to it once they hold a pickup
(``bind_pickup``), and ``LogContextFilter`` writes it into every log record. Tasks published
while a pickup is bound carry its correlation id in a message header, and the task's run sets it
again in the worker, so the whole chain logs the same id.

Celery already uses the name ``correlation_id`` (the AMQP property, which it sets to the task
id, and the request attribute of the same name), hence a header name of our own.
"""

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from types import MappingProxyType
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

#: the message header that carries the correlation id (and the pickup id) to a task
CORRELATION_HEADER = "x_correlation_id"
PICKUP_HEADER = "x_pickup_id"
#: the record attributes ``LogContextFilter`` fills from the context, in this order
CONTEXT_FIELDS = ("correlation_id", "pickup_id", "user_id", "task_id", "task_name")

_context: ContextVar[Mapping[str, Any]] = ContextVar("log_context", default=MappingProxyType({}))


# --- the context ----------------------------------------------------------------------------


@contextmanager
def log_context(**values: Any) -> Iterator[None]:
    """A fresh log context for one unit of work (a request, a socket frame), dropped after it:
    nothing bound inside leaks into the next unit that the same task or thread runs."""
    token = _context.set(_clean(values))
    try:
        yield
    finally:
        _context.reset(token)


def bind(**values: Any) -> None:
    """Add to the current context until its unit of work ends."""
    _context.set({**_context.get(), **_clean(values)})


def bind_pickup(pickup: Any) -> None:
    """From here on the logs, and the tasks published, belong to this pickup (None: nothing)."""
    if pickup is not None:
        bind(correlation_id=str(pickup.correlation_id), pickup_id=pickup.pk)


def current() -> dict[str, Any]:
    """The context's fields as they go into a log record (the request object resolved into the
    id of its user, once the request has been authenticated)."""
    values = dict(_context.get())
    request = values.pop("request", None)
    if "user_id" not in values and request is not None:
        user_id = _authenticated_user_id(request)
        if user_id is not None:
            values["user_id"] = user_id
    return values


def _clean(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _authenticated_user_id(request: Any) -> int | None:
    """The request's user's id if authentication has already happened; never triggers it.

    ``AuthenticationMiddleware`` puts a lazy object on the request, and Django REST framework
    replaces it with the user its authenticators found, so a log line written after either ran
    names the user, and one written before does not cost a session lookup.
    """
    from django.utils.functional import empty

    user = request.__dict__.get("user")
    wrapped = getattr(user, "_wrapped", user)
    if wrapped is None or wrapped is empty:  # no user yet, or the lazy one not evaluated yet
        return None
    if not getattr(wrapped, "is_authenticated", False):
        return None
    return wrapped.pk


def request_log_context(get_response: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Middleware: each HTTP request logs with a context of its own, naming its user once
    authenticated (``bind_pickup`` adds the pickup when a service loads one)."""

    def middleware(request: Any) -> Any:
        with log_context(request=request):
            return get_response(request)

    return middleware


# --- log records ----------------------------------------------------------------------------


class LogContextFilter(logging.Filter):
    """Writes the context (``CONTEXT_FIELDS``) into each record that passes, unless the record
    names a field itself (``extra=``). Attached to the handler, so records of every logger get
    it, the libraries' ones included."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in current().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


# Attributes some libraries add to their records that only repeat the message: uvicorn's
# coloured copy of it, Celery's dict of the task's fields (with its arguments) behind "Task
# ...[id] received" and the like.
_NOT_LOGGED = ("color_message", "data", "taskName")


class JsonFormatter(_JsonFormatter):
    """One JSON object a line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, then
    the context and any ``extra`` fields, and ``exc_info`` with the traceback."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", ["levelname", "name", "message"])
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", "time")
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, *_NOT_LOGGED])
        super().__init__(*args, **kwargs)


class TextFormatter(logging.Formatter):
    """Readable lines for development: the usual ones, then the context's fields as
    ``key=value`` in square brackets."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", "%(asctime)s %(levelname)s %(name)s %(message)s")
        super().__init__(*args, **kwargs)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = [f"{key}={getattr(record, key)}" for key in CONTEXT_FIELDS if hasattr(record, key)]
        return f"{line} [{' '.join(fields)}]" if fields else line


# --- Celery: the context into the message, and out of it in the worker -----------------------
# Connected in procurement_system/celery.py.


def add_context_headers(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """``before_task_publish``: a task published while a pickup is bound carries its ids."""
    if headers is None:
        return
    values = _context.get()
    if "correlation_id" in values:
        headers.setdefault(CORRELATION_HEADER, values["correlation_id"])
    if "pickup_id" in values:
        headers.setdefault(PICKUP_HEADER, values["pickup_id"])


# The context tokens of the tasks running in this process, by task id, for task_postrun.
_task_tokens: dict[str, Token] = {}


def enter_task_context(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    """``task_prerun``: the task's run gets a context of its own, with the ids its message
    carried. A task run eagerly (in the tests) has no message: it keeps the caller's ids."""
    request = getattr(task, "request", None)
    inherited = _context.get()
    values = {
        "correlation_id": _header(request, CORRELATION_HEADER) or inherited.get("correlation_id"),
        "pickup_id": _header(request, PICKUP_HEADER) or inherited.get("pickup_id"),
        "task_id": task_id,
        "task_name": getattr(task, "name", None),
    }
    if task_id is not None:
        _task_tokens[task_id] = _context.set(_clean(values))


def leave_task_context(task_id: str | None = None, **kwargs: Any) -> None:
    """``task_postrun``: back to the context from before the task ran."""
    token = _task_tokens.pop(task_id, None) if task_id is not None else None
    if token is not None:
        try:
            _context.reset(token)
        except ValueError:  # set in another context (cannot happen with Celery's pools)
            _context.set({})


def _header(request: Any, name: str) -> Any:
    if request is None:
        return None
    value = getattr(request, name, None)
    if value is None:  # custom headers sent as ``headers=`` end up nested on some versions
        value = (getattr(request, "headers", None) or {}).get(name)
    return value


def configure_worker_logging(**kwargs: Any) -> None:
    """``setup_logging``: Celery's processes (workers, beat) log exactly like the web process,
    from ``settings.LOGGING``, instead of Celery configuring the root logger its own way."""
    from django.conf import settings

    configure_logging(settings.LOGGING)


def configure_logging(config: dict[str, Any]) -> None:
    """``LOGGING_CONFIG``: ``dictConfig``, and Python's warnings through the same handler (as
    the ``py.warnings`` logger) instead of bare text on stderr between the JSON lines."""
    import logging.config

    logging.config.dictConfig(config)
    logging.captureWarnings(True)
