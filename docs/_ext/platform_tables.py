"""Tables drawn from the code, so the documentation cannot drift from it.

Each directive reads one of the project's own tables (the transition table, the error codes and
their HTTP statuses, the notification kinds, the statuses, the Celery routes and the periodic
tasks, the lifecycle settings) and renders it. The prose the code does not hold (who fires an
event, what a status means, which extra fields a notification carries, when the REST API answers
an error code, what a setting is for) lives below, keyed by the code's own names; a name the code
has and this file lacks, or the other way round, is a build warning, and the documentation build
treats warnings as errors.
"""

import ast
import re
import sys
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

# Who fires each event of the pickup state machine.
EVENT_TRIGGERS = {
    "assign": "The assignment task (``assign_vendor_task``), or a retry of an unassigned pickup "
    "right after ``retry``: it reserved capacity at the nearest eligible vendor, quoted that "
    "vendor's prices onto the items and started the offer's timer (``offer_expires_at``).",
    "no_vendor": "The assignment task: no vendor is eligible. Retries follow with backoff (see "
    ":ref:`lifecycle-retries`).",
    "retry": "The customer: ``update`` changing ``latitude``, ``longitude`` or ``items`` of an "
    "unassigned pickup; the assignment is queued again (see :ref:`unassigned-pickups`). Or a "
    "retry that found an eligible vendor (``retry_unassigned_task`` when the backoff ran out, "
    "``retry_unassigned_for_vendor_task`` when a vendor can take more), followed by ``assign`` "
    "in the same transaction.",
    "offer_timeout": "The offer sweep (``expire_offers_task``): nobody accepted within "
    "``OFFER_TIMEOUT_SECONDS``. The vendor is recorded as a ``timeout`` rejection, its capacity "
    "is released and the assignment is queued again (see :ref:`lifecycle-offer-timer`).",
    "accept": "A member of the offered vendor: ``accept``.",
    "vendor_reject": "A member of the offered vendor: ``reject``.",
    "customer_reject": "The customer: ``reject`` after the vendor accepted.",
    "start": 'A member of the vendor: ``update`` with ``"status": "en_route"``.',
    "pick_up": 'A member of the vendor: ``update`` with ``"status": "picked_up"`` and the '
    "actual weight of every item.",
    "complete": 'A member of the vendor: ``update`` with ``"status": "completed"``; the receipt '
    "is issued next.",
    "cancel": "The customer: ``cancel``.",
    "expire": "The expiry sweep (``expire_pickups_task``), or an assignment or retry that finds "
    "the window over: ``window_end`` has passed and no vendor set off (see "
    ":ref:`lifecycle-expiry`).",
}

# What each status means.
STATUS_MEANINGS = {
    "pending": "Created (or handed back by a rejection, an offer timeout or a retry) and waiting "
    "for the assignment task.",
    "offered": "Offered to one vendor, which holds one unit of its capacity for it and must "
    "accept or reject before ``offer_expires_at``.",
    "unassigned": "The assignment task found no eligible vendor; retried with growing pauses, "
    "and at once when a vendor can take more.",
    "accepted": "The vendor took the job; its members now see the customer's contact details.",
    "en_route": "The vendor is on the way and may report its position (live tracking).",
    "picked_up": "The goods were collected and every item's actual weight recorded.",
    "completed": "The job is done, the vendor's capacity unit is released and the receipt is "
    "issued. Terminal.",
    "cancelled": "The customer withdrew the request. Terminal.",
    "expired": "The window ended before a vendor set off to collect the goods; a vendor that "
    "held the pickup got its capacity unit back. Terminal.",
}

# The keys a notification's ``data`` carries besides ``pickup_id``, ``status`` and ``version``.
KIND_EXTRA_DATA = {
    "pickup.created": "",
    "pickup.updated": "``fields``: the names of the fields that changed, sorted.",
    "pickup.offered": "``distance_km``: distance from the vendor's base to the pickup, "
    "rounded to 0.01 km; ``offer_expires_at``: when the offer is withdrawn unless accepted.",
    "pickup.unassigned": "",
    "pickup.accepted": "",
    "pickup.rejected": "``rejected_by`` (``vendor`` or ``customer``), ``reason``, "
    "``vendor_id`` (the vendor that was let go).",
    "pickup.cancelled": "``reason``.",
    "pickup.en_route": "",
    "pickup.picked_up": "",
    "pickup.completed": "",
    "pickup.expired": "",
    "offer.expired": "``vendor_id``: the vendor whose offer was withdrawn.",
    "receipt.issued": "``receipt`` (its number, e.g. ``R-000001``), ``total`` (a string with "
    "two decimals) and ``currency``; no ``status`` or ``version``.",
    "vendor.digest": "Not about one pickup: only ``vendor_id``, ``day`` (``YYYY-MM-DD``), "
    "``offers``, ``accepted``, ``completed``, ``earnings`` (a string with two decimals) and "
    "``currency``; no ``pickup_id``, ``status`` or ``version``.",
}

# When the REST API answers each error code (the HTTP status comes from ``HTTP_STATUS``).
REST_ERROR_USES = {
    "bad_request": "The body is not valid JSON (``NaN`` and ``Infinity`` included); the message "
    "is the parser's, e.g. ``JSON parse error - Expecting property name enclosed in double "
    "quotes: line 1 column 2 (char 1)``.",
    "validation_error": "A field, query parameter or header is missing, unknown, of the wrong "
    "JSON type or out of range, a filter or ``page_size`` is empty or invalid, or the body is "
    "not a JSON object; ``errors`` maps each offending name to its messages. Also wrong "
    "credentials at ``POST /api/auth/token/``.",
    "not_authenticated": "No ``Authorization`` header and no session, an unknown or revoked "
    "token, another scheme (``Bearer``), or an inactive user. The response carries "
    "``WWW-Authenticate: Token``.",
    "forbidden": "You can see the pickup but your role may not do this (a customer accepting, "
    "a vendor member cancelling or editing, an operator changing someone else's pickup), a "
    "non-operator creating a vendor or managing its members, or a session-authenticated request "
    "failed the CSRF check (``CSRF Failed: ...``).",
    "not_found": "The pickup, vendor, notification or task does not exist or is not yours to "
    "see, ``?page=`` is past the last page or not a number, or the path under ``/api/`` matches "
    "no endpoint.",
    "method_not_allowed": "The path exists but does not take this method; the ``Allow`` header "
    "lists those it does.",
    "not_acceptable": "The ``Accept`` header excludes ``application/json``.",
    "invalid_transition": "The pickup's current status does not allow the action (see "
    ":doc:`state-machine`).",
    "unsupported_media_type": "A body was sent with a ``Content-Type`` other than "
    "``application/json`` (form data, for instance, also at ``POST /api/auth/token/``).",
    "throttled": "Too many requests; ``retry_after`` in the body and the ``Retry-After`` header "
    "give the seconds to wait.",
    "rate_limited": "Never, in practice: it is the WebSocket's answer to frames sent faster than "
    "a socket's frame rate (see :doc:`security`) and to a vendor's ``location`` sent more often "
    "than once a second per pickup, and no REST endpoint reports positions. It has an HTTP status "
    "only because every domain error does; the REST API's own rate limit is ``throttled``.",
    "internal_error": "An unexpected server error, logged on the server; the message is always "
    "``Something went wrong on the server; it has been logged.``",
}

# What each named set of statuses in ``pickups.transitions`` is for.
STATUS_SETS = {
    "VENDOR_HELD": "A vendor holds the pickup: ``vendor`` is set (a database constraint "
    "enforces that ``vendor`` is set exactly in these statuses).",
    "CAPACITY_HELD": "The pickup takes one unit of its vendor's capacity.",
    "TERMINAL": "Nothing can happen any more.",
    "EDITABLE": "The customer may still edit address, notes, contact phone and window.",
    "RELOCATABLE": "The customer may also change location (latitude, longitude) and items.",
    "EXPIRABLE": "Once ``window_end`` has passed, the pickup becomes ``expired`` (the sources of "
    "the ``expire`` event). ``en_route`` is not among them: a vendor on its way may still finish "
    "the job.",
}


# Who fires ``create``, the domain event that starts a pickup's history (the others are the state
# machine's events, described in ``EVENT_TRIGGERS``).
CREATE_TRIGGER = "The customer: ``create`` over the socket, or ``POST /api/pickups/``."

# The domain events' settings (``events-settings-table``), and the defaults shown for those whose
# default is an expression.
EVENTS_SETTINGS_BLOCKS = ("DOMAIN EVENTS",)
EVENTS_SETTING_MEANINGS = {
    "EVENTS_EXCHANGE": "The durable topic exchange the events are published to. Its default "
    "starts with ``CELERY_QUEUE_PREFIX`` (empty by default), as the task exchange does, so that "
    "stacks sharing one RabbitMQ keep their events apart.",
    "EVENTS_BROKER_URL": "The RabbitMQ the events go to, as an AMQP URL "
    "(``amqp://user:password@host:5672/vhost``); by default the Celery broker.",
    "EVENTS_CONNECTION_TIMEOUT": "Seconds a relay waits to connect (and for a broker that holds "
    "publishers back under a resource alarm) before it gives up; the events wait for the next "
    "run.",
    "EVENTS_RELAY_ON_COMMIT": "Queue a relay after every transition commits, so that events go "
    "out within milliseconds; ``false`` leaves them to the periodic run.",
    "EVENTS_RELAY_BATCH_SIZE": "Events a relay reads, publishes and marks at a time.",
    "SCHEDULE_EVENTS_RELAY_SECONDS": "Default interval of the periodic ``relay_events_task``: how "
    "soon an event whose own relay failed or was lost is tried again.",
    "EVENTS_RETENTION_DAYS": "Published events older than this are deleted "
    "(``purge_published_events_task``); unpublished ones are kept whatever their age.",
}
EVENTS_SETTING_DEFAULTS = {
    "EVENTS_EXCHANGE": "``procurement.events``, after ``CELERY_QUEUE_PREFIX``",
    "EVENTS_BROKER_URL": "``CELERY_BROKER_URL``",
}

# What each setting of the lifecycle is for. The environment variable and the default are read
# from ``procurement_system/settings.py`` itself; every setting of its blocks named in
# ``SETTINGS_BLOCKS`` must be described here, and the others named here must exist there.
SETTINGS_BLOCKS = ("LIFECYCLE", "LIVE TRACKING")
SETTING_MEANINGS = {
    "OFFER_TIMEOUT_SECONDS": "How long a vendor has to accept an offer before it is withdrawn "
    "and the pickup offered to the next vendor.",
    "UNASSIGNED_RETRY_BASE_SECONDS": "The pause before the first retry of an unassigned pickup; "
    "it doubles after every retry that finds no vendor.",
    "UNASSIGNED_RETRY_MAX_SECONDS": "The longest pause between two retries.",
    "LIFECYCLE_BATCH_SIZE": "The most pickups one run of a sweep (offers, retries, expiry) "
    "handles; the rest wait for the next run.",
    "SCHEDULE_OFFER_SWEEP_SECONDS": "Default interval of ``expire_offers_task``.",
    "SCHEDULE_RETRY_SWEEP_SECONDS": "Default interval of ``retry_unassigned_task``.",
    "SCHEDULE_EXPIRY_SWEEP_SECONDS": "Default interval of ``expire_pickups_task``.",
    "SCHEDULE_STALL_SWEEP_SECONDS": "Default interval of ``requeue_stalled_task``.",
    "STALLED_AFTER_SECONDS": "A pickup pending this long, or completed this long without a "
    "receipt, has its task published again (see :ref:`delivery`).",
    "SCHEDULE_CLEANUP_MINUTES": "Default interval, in minutes, of the three cleanup tasks.",
    "SCHEDULE_DIGEST_HOUR": "The hour (UTC) at which the daily digest goes out, on the hour.",
    "NOTIFICATION_RETENTION_DAYS": "Read notifications older than this (by ``read_at``) are "
    "deleted; unread ones are kept.",
    "LOCATION_RETENTION_HOURS": "Reported positions older than this are deleted (the last one "
    "stays on the pickup as ``vendor_position``).",
    "CLEANUP_BATCH_SIZE": "Rows one cleanup statement deletes, each batch in its own transaction.",
    "CLEANUP_MAX_BATCHES": "Batches one run of a cleanup task deletes at most; the next run goes "
    "on.",
    "LOCATION_MIN_INTERVAL_SECONDS": "A vendor's position on one pickup is taken at most once "
    "per this many seconds; more often answers ``rate_limited``.",
    "TRACKING_MAX_SUBSCRIPTIONS": "Pickups one socket may follow at once with ``subscribe``.",
    "PICKUP_CURRENCY": "The currency (ISO 4217) of vendors' prices and of receipts.",
    "EMAIL_ENABLED": "Email is on when ``EMAIL_URL`` names a server (``smtp://user:pass@host:587``,"
    " or ``consolemail://`` to print the messages); the daily digest is then also emailed. "
    "Without it the digest is a notification only.",
    "DEFAULT_FROM_EMAIL": "The sender of the digest emails.",
    "CELERY_RESULT_EXPIRES": "Seconds a task result is kept; ``purge_task_results_task`` "
    "deletes older ones.",
}

# The security settings and the WebSocket limits, in the same way (``security-settings-table``).
SECURITY_SETTINGS_BLOCKS = ("SECURITY", "WEBSOCKET LIMITS")
SECURITY_SETTING_MEANINGS = {
    "DEBUG": "Debug mode, for development only. ``false`` turns on every production default "
    "below and requires ``DJANGO_SECRET_KEY``.",
    "SECRET_KEY": "Signs sessions, CSRF tokens and password resets. The default is the "
    "development key, which the settings refuse (``ImproperlyConfigured``) outside debug mode; "
    "set a long random string.",
    "ALLOWED_HOSTS": "The host names the site answers to, comma-separated; also the WebSocket "
    "``Origin`` hosts that are let in.",
    "SECURE_SSL_REDIRECT": "Redirect every plain-HTTP request to HTTPS (301), ``/health/``, "
    "``/ready/`` and ``/metrics`` excepted.",
    "SECURE_REDIRECT_EXEMPT": "``/health/`` and ``/ready/`` answer over plain HTTP too, for the "
    "checks of containers and load balancers, and ``/metrics`` for Prometheus (see "
    ":doc:`monitoring`).",
    "SECURE_HSTS_SECONDS": "``Strict-Transport-Security`` max-age on HTTPS responses: browsers "
    "then refuse plain HTTP to the site for that long.",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "HSTS covers every subdomain as well.",
    "SECURE_HSTS_PRELOAD": "HSTS says the site may go on the browsers' preload list.",
    "SESSION_COOKIE_SECURE": "The session cookie is sent over HTTPS only.",
    "CSRF_COOKIE_SECURE": "The CSRF cookie is sent over HTTPS only.",
    "BEHIND_TLS_PROXY": "A proxy in front terminates TLS and sets ``X-Forwarded-Proto`` itself "
    "(replacing any the client sent): requests it marks ``https`` count as secure.",
    "SECURE_PROXY_SSL_HEADER": "``X-Forwarded-Proto: https`` when ``DJANGO_BEHIND_TLS_PROXY`` "
    "is true, otherwise unset (the header is not believed).",
    "CSRF_TRUSTED_ORIGINS": "Further origins (``https://host``) whose pages may send unsafe "
    "requests with the session; the site's own needs no entry.",
    "WEBSOCKET_MAX_FRAME_BYTES": "The largest frame a socket accepts (65536 bytes, as UTF-8); "
    "a larger one closes the socket with ``1009``.",
    "WEBSOCKET_RATE": "Frames a second one socket may send, sustained; ``0`` turns the limit off.",
    "WEBSOCKET_BURST": "Frames one socket may send at once, after a pause.",
    "WEBSOCKET_MAX_REFUSED": "Frames over the rate, within the window below, that a socket is "
    "told off for with ``rate_limited``; one more closes it with ``4429``.",
    "WEBSOCKET_REFUSED_WINDOW_SECONDS": "The window in which refused frames are counted.",
    "WEBSOCKET_MAX_PER_USER": "Sockets one user may hold open at once, over all web processes "
    "and both endpoints; one more closes with ``4409``. ``0`` turns the cap off.",
    "WEBSOCKET_SLOT_TTL_SECONDS": "How long an open socket keeps counting after the last "
    "refresh (every third of it) from its process: the time after a crash until the crashed "
    "process's sockets stop counting.",
}

# The logging and monitoring settings, in the same way (``monitoring-settings-table``).
MONITORING_SETTINGS_BLOCKS = ("LOGGING", "MONITORING")
MONITORING_SETTING_MEANINGS = {
    "LOG_LEVEL": "The level of the root logger in every process: web, workers, beat.",
    "LOG_FORMAT": "``json``: one JSON object a line; ``text``: readable lines with the context "
    "in brackets. The default follows ``DJANGO_DEBUG``: ``text`` in debug mode (``make run``), "
    "``json`` otherwise.",
    "LOGGING_CONFIG": "Configures logging from ``LOGGING`` and sends Python's warnings through it "
    "(the ``py.warnings`` logger), so that no bare text lands between the JSON lines.",
    "LOGGING": "One console handler for the root logger, with the log context filter and the "
    "format ``LOG_FORMAT`` names; uvicorn's loggers write through it too, and Celery's workers "
    "and beat take the same configuration.",
    "READY_CHECK_TIMEOUT_SECONDS": "How long each check of ``/ready/`` may take (connecting, "
    "answering, the workers' replies); the checks run at once, and the endpoint answers within "
    "about a second more, even when a dependency hangs.",
    "METRICS_TOKEN": "When set, ``/metrics`` answers only requests with ``Authorization: Bearer "
    "<token>``; unset, only requests from this machine (the loopback address).",
}

SETTINGS_FILE = Path(__file__).resolve().parents[2] / "procurement_system" / "settings.py"
PROCFILE = Path(__file__).resolve().parents[2] / "Procfile"


def _check(kind: str, code_names, doc_names) -> None:
    code_names, doc_names = set(code_names), set(doc_names)
    for name in sorted(code_names - doc_names):
        logger.warning(
            "platform_tables: %s %r is in the code but not described in the docs", kind, name
        )
    for name in sorted(doc_names - code_names):
        logger.warning(
            "platform_tables: %s %r is described in the docs but not in the code", kind, name
        )


def list_table(rows: list[list[str]], widths: list[int]) -> list[str]:
    """The reST lines of a ``list-table`` whose first row is the header; an empty cell shows a
    dash. Shared with ``asyncapi_doc``."""
    lines = [
        ".. list-table::",
        "   :header-rows: 1",
        f"   :widths: {' '.join(str(w) for w in widths)}",
        "",
    ]
    for row in rows:
        for index, cell in enumerate(row):
            first, *rest = (cell or "\u2014").splitlines() or [""]
            lines.append(f"   {'*' if index == 0 else ' '} - {first}")
            lines.extend(f"       {line}" for line in rest)
    return [*lines, ""]


class _TableDirective(SphinxDirective):
    has_content = False
    header: list[str] = []
    widths: list[int] = []

    def rows(self) -> list[list[str]]:
        raise NotImplementedError

    def depends_on(self, *modules) -> None:
        """Rebuild this page when a module the table is read from changes."""
        for module in modules:
            self.env.note_dependency(module.__file__)

    def run(self) -> list[nodes.Node]:
        lines = list_table([self.header, *self.rows()], self.widths)
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=self.get_source_info()[0]), 0, container)
        return container.children


class TransitionTable(_TableDirective):
    header = ["From", "Event", "To", "Fired by"]
    widths = [15, 18, 15, 52]

    def rows(self):
        from pickups import transitions
        from pickups.transitions import TRANSITIONS, Event

        self.depends_on(transitions)
        _check("event", [e.value for e in Event], EVENT_TRIGGERS)
        return [
            [f"``{source}``", f"``{event}``", f"``{target}``", EVENT_TRIGGERS.get(event, "")]
            for (source, event), target in TRANSITIONS.items()
        ]


class StatusTable(_TableDirective):
    header = ["Status", "Meaning"]
    widths = [20, 80]

    def rows(self):
        from pickups import transitions
        from pickups.transitions import Status

        self.depends_on(transitions)
        _check("status", [s.value for s in Status], STATUS_MEANINGS)
        return [[f"``{s}``", STATUS_MEANINGS.get(s, "")] for s in Status]


class StatusSetTable(_TableDirective):
    header = ["Set", "Statuses", "Meaning"]
    widths = [18, 40, 42]

    def rows(self):
        from pickups import transitions
        from pickups.transitions import Status

        self.depends_on(transitions)
        _check(
            "status set",
            [
                name
                for name, value in vars(transitions).items()
                if name.isupper() and isinstance(value, frozenset)
            ],
            STATUS_SETS,
        )
        order = list(Status)
        return [
            [
                f"``{name}``",
                ", ".join(f"``{s}``" for s in sorted(getattr(transitions, name), key=order.index)),
                meaning,
            ]
            for name, meaning in STATUS_SETS.items()
        ]


class VendorStepTable(_TableDirective):
    header = ["``status`` sent with ``update``", "Event", "Reply and notification kind"]
    widths = [30, 25, 45]

    def rows(self):
        from pickups import transitions
        from pickups.transitions import VENDOR_STEPS

        self.depends_on(transitions)
        return [
            [f"``{status}``", f"``{event}``", f"``pickup.{status}``"]
            for status, event in VENDOR_STEPS.items()
        ]


class ErrorCodeTable(_TableDirective):
    header = ["``code``", "Meaning"]
    widths = [22, 78]

    def rows(self):
        from procurement_system import errors
        from procurement_system.errors import ERROR_CODES

        self.depends_on(errors)
        return [[f"``{code}``", meaning] for code, meaning in ERROR_CODES.items()]


class RestErrorStatusTable(_TableDirective):
    header = ["``code``", "HTTP status", "When the REST API answers it"]
    widths = [22, 22, 56]

    def rows(self):
        from http import HTTPStatus

        from procurement_system import errors, rest
        from procurement_system.errors import ERROR_CODES
        from procurement_system.rest import DRF_CODES, HTTP_STATUS

        self.depends_on(errors, rest)
        _check("REST error code", HTTP_STATUS, REST_ERROR_USES)
        _check("REST error code (HTTP_STATUS against ERROR_CODES)", HTTP_STATUS, ERROR_CODES)
        _check(
            "REST error code (DRF_CODES against HTTP_STATUS)",
            {code for _, code in DRF_CODES} | set(HTTP_STATUS),
            HTTP_STATUS,
        )
        return [
            [
                f"``{code}``",
                f"{status} {HTTPStatus(status).phrase}",
                REST_ERROR_USES.get(code, ""),
            ]
            for code, status in HTTP_STATUS.items()
        ]


class NotificationKindTable(_TableDirective):
    header = ["``kind``", "Who receives it, and what it means", "Extra ``data`` keys"]
    widths = [20, 50, 30]

    def rows(self):
        from notifications import kinds
        from notifications.kinds import KINDS

        self.depends_on(kinds)
        _check("notification kind", KINDS, KIND_EXTRA_DATA)
        return [
            [f"``{kind}``", meaning, KIND_EXTRA_DATA.get(kind, "")]
            for kind, meaning in KINDS.items()
        ]


def _task_ref(name: str) -> str:
    return f":py:task:`~{name}`"


class CeleryQueueTable(_TableDirective):
    """The queues, the tasks ``CELERY_TASK_ROUTES`` sends to each, and the ``Procfile`` worker
    that consumes it."""

    header = ["Queue", "Tasks routed to it", "Worker (``Procfile``)"]
    widths = [18, 54, 28]

    def rows(self):
        from django.conf import settings

        from procurement_system import settings as settings_module
        from procurement_system.celery import app

        self.depends_on(settings_module)
        self.env.note_dependency(str(PROCFILE))
        app.loader.import_default_modules()
        prefix = settings.CELERY_QUEUE_PREFIX
        routes = {task: route["queue"] for task, route in settings.CELERY_TASK_ROUTES.items()}
        ours = sorted(name for name in app.tasks if not name.startswith("celery."))
        workers = _procfile_workers()
        rows = []
        for queue in (q.name for q in settings.CELERY_TASK_QUEUES):
            tasks = [_task_ref(t) for t in routes if routes[t] == queue and t in ours]
            if queue == settings.CELERY_TASK_DEFAULT_QUEUE:
                tasks += [_task_ref(t) for t in ours if t not in routes]
                tasks.append("and, as the default queue, any task without a route")
            name = queue.removeprefix(prefix)
            served = [f"``{p}``, concurrency {n}" for p, (qs, n) in workers.items() if name in qs]
            rows.append([f"``{name}``", ", ".join(tasks), "; ".join(served) or "No worker."])
        return rows


class CeleryTaskOptionsTable(_TableDirective):
    """Every registered task of the project as Celery runs it: its queue, its retries, its time
    limits and, for a periodic task, its default schedule. Read from the task objects
    themselves, so a changed option shows here without anyone writing it twice."""

    header = ["Task", "Queue", "Retries", "Time limits (soft / hard)", "Default schedule"]
    widths = [30, 13, 25, 14, 18]

    def rows(self):
        from django.conf import settings

        from procurement_system import schedule
        from procurement_system import settings as settings_module
        from procurement_system.celery import app

        self.depends_on(schedule, settings_module)
        app.loader.import_default_modules()
        prefix = settings.CELERY_QUEUE_PREFIX
        schedules = {
            task.task: _every(task.every_seconds) if task.every_seconds else _at(task.crontab)
            for task in schedule.periodic_tasks()
        }
        rows = []
        for name in sorted(n for n in app.tasks if not n.startswith("celery.")):
            task = app.tasks[name]
            self.depends_on(sys.modules[task.__module__])
            route = settings.CELERY_TASK_ROUTES.get(name, {})
            queue = route.get("queue", settings.CELERY_TASK_DEFAULT_QUEUE).removeprefix(prefix)
            rows.append(
                [
                    _task_ref(name),
                    f"``{queue}``",
                    _retries(task),
                    _limits(task),
                    schedules.get(name, "On demand"),
                ]
            )
        return rows


def _retries(task) -> str:
    errors = getattr(task, "autoretry_for", ())
    if not errors:
        return "Not retried"
    names = ", ".join(f"``{error.__name__}``" for error in errors)
    backoff = ""
    if getattr(task, "retry_backoff", False):
        backoff = f", backoff up to {getattr(task, 'retry_backoff_max', 600)} s"
    return f"On {names}: at most {task.max_retries}{backoff}"


def _limits(task) -> str:
    soft, hard = (
        "\u2014" if limit is None else f"{limit} s"
        for limit in (task.soft_time_limit, task.time_limit)
    )
    return f"{soft} / {hard}"


def _procfile_workers() -> dict[str, tuple[set[str], str]]:
    """Each Celery worker of the Procfile: the queues it consumes (without the prefix) and its
    concurrency."""
    workers = {}
    for line in PROCFILE.read_text().splitlines():
        match = re.match(r"^([\w-]+):.*\bworker\b.*--queues\s+(\S+)", line)
        if match:
            queues = {q.replace("${CELERY_QUEUE_PREFIX}", "") for q in match[2].split(",")}
            concurrency = re.search(r"--concurrency\s+(\d+)", line)
            workers[match[1]] = (queues, concurrency[1] if concurrency else "default")
    return workers


class PeriodicTaskTable(_TableDirective):
    """The periodic tasks ``setup_periodic_tasks`` writes for beat, with their default schedules,
    the settings those come from and the queue each task runs on."""

    header = ["Periodic task (in the admin)", "Task", "Default schedule", "Set by", "Queue"]
    widths = [24, 26, 18, 20, 12]

    def rows(self):
        from django.conf import settings

        from procurement_system import schedule
        from procurement_system import settings as settings_module

        self.depends_on(schedule, settings_module)
        knobs = _schedule_settings(Path(schedule.__file__))
        prefix = settings.CELERY_QUEUE_PREFIX
        rows = []
        for task in schedule.periodic_tasks():
            route = settings.CELERY_TASK_ROUTES.get(task.task, {})
            queue = route.get("queue", settings.CELERY_TASK_DEFAULT_QUEUE).removeprefix(prefix)
            rows.append(
                [
                    task.name,
                    _task_ref(task.task),
                    _every(task.every_seconds) if task.every_seconds else _at(task.crontab),
                    ", ".join(f"``{k}``" for k in knobs.get(task.task, [])),
                    f"``{queue}``",
                ]
            )
        return rows


def _schedule_settings(path: Path) -> dict[str, list[str]]:
    """The settings each ``PeriodicTask(...)`` in ``schedule.py`` reads, by task name."""
    found: dict[str, list[str]] = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "PeriodicTask":
            task = node.args[1].value
            found[task] = [
                n.attr
                for n in ast.walk(node)
                if isinstance(n, ast.Attribute) and getattr(n.value, "id", None) == "settings"
            ]
    return found


def _every(seconds: int) -> str:
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            n = seconds // size
            return f"every {unit}" if n == 1 else f"every {n} {unit}s"
    return f"every {seconds} s"


def _at(crontab: dict[str, str] | None) -> str:
    fields = crontab or {}
    if set(fields) == {"minute", "hour"} and all(v.isdigit() for v in fields.values()):
        return f"daily at {int(fields['hour']):02d}:{int(fields['minute']):02d} UTC"
    return "crontab " + " ".join(f"{k}={v}" for k, v in fields.items())


class SettingsTable(_TableDirective):
    """The lifecycle's settings, with the environment variable and default each is read with in
    ``procurement_system/settings.py``."""

    header = ["Environment variable", "Default", "Meaning"]
    widths = [34, 16, 50]
    blocks = SETTINGS_BLOCKS
    meanings = SETTING_MEANINGS

    def rows(self):
        self.env.note_dependency(str(SETTINGS_FILE))
        found = _settings_in_source()
        in_blocks = {name for name, (block, _, _) in found.items() if block in self.blocks}
        _check(
            "setting",
            in_blocks,
            [name for name in self.meanings if name in in_blocks or name not in found],
        )
        rows = []
        for name, meaning in self.meanings.items():
            if name not in found:
                continue
            _, variable, default = found[name]
            if variable is None:
                first = f"None: ``{name}`` is fixed in the settings."
            elif variable != name:
                first = f"``{variable}`` (the setting ``{name}``)"
            else:
                first = f"``{name}``"
            rows.append([first, default, meaning])
        return rows


class MonitoringSettingsTable(SettingsTable):
    """The logging and monitoring settings (see ``MONITORING_SETTING_MEANINGS``)."""

    blocks = MONITORING_SETTINGS_BLOCKS
    meanings = MONITORING_SETTING_MEANINGS

    def rows(self):
        # LOGGING's value is a whole dictionary: its meaning says what it holds.
        return [
            [first, "" if "``LOGGING``" in first else default, meaning]
            for first, default, meaning in super().rows()
        ]


class MetricsTable(_TableDirective):
    """Every metric of the web process, from its registry: ``procurement_system.metrics``."""

    header = ["Metric", "Type", "Labels", "What it measures"]
    widths = [34, 10, 20, 36]

    def rows(self):
        from procurement_system import metrics

        self.depends_on(metrics)
        rows = []
        for metric in metrics.METRICS:
            [family] = metric.describe()
            name = f"{family.name}_total" if family.type == "counter" else family.name
            labels = ", ".join(f"``{label}``" for label in metric._labelnames)
            rows.append([f"``{name}``", family.type, labels, family.documentation])
        return rows


class SecuritySettingsTable(SettingsTable):
    """The security settings and the WebSocket limits (see ``SECURITY_SETTING_MEANINGS``)."""

    blocks = SECURITY_SETTINGS_BLOCKS
    meanings = SECURITY_SETTING_MEANINGS


class EventsSettingsTable(SettingsTable):
    """The domain events' settings (see ``EVENTS_SETTING_MEANINGS``)."""

    blocks = EVENTS_SETTINGS_BLOCKS
    meanings = EVENTS_SETTING_MEANINGS

    def rows(self):
        return [
            [first, EVENTS_SETTING_DEFAULTS.get(first.strip("`"), default), meaning]
            for first, default, meaning in super().rows()
        ]


class DomainEventTable(_TableDirective):
    """Every domain event (``pickups.events.EVENTS``): its routing key, the transitions it is
    published for (from the state machine's table) and who fires it."""

    header = ["Routing key", "From → to", "Fired by"]
    widths = [22, 30, 48]

    def rows(self):
        from pickups import events, transitions
        from pickups.transitions import TRANSITIONS

        self.depends_on(events, transitions)
        rows = []
        for event in events.EVENTS:
            if event == events.CREATE:
                moves, fired = "(none) → ``pending``", CREATE_TRIGGER
            else:
                sources: dict[str, list[str]] = {}
                for (source, name), target in TRANSITIONS.items():
                    if name == event:
                        sources.setdefault(target.value, []).append(f"``{source.value}``")
                moves = "; ".join(f"{', '.join(s)} → ``{t}``" for t, s in sources.items())
                fired = EVENT_TRIGGERS.get(event, "")
            rows.append([f"``{events.routing_key(event)}``", moves, fired])
        return rows


_UNSET = object()


def _settings_in_source() -> dict[str, tuple[str, str | None, str]]:
    """Each top-level setting in settings.py: its block (the ``# NAME`` heading above it), the
    environment variable it is read from (or None) and its default, as written there."""
    text = SETTINGS_FILE.read_text()
    lines = text.splitlines()
    # A block's heading is the first line of the comment that a ``# ---`` rule closes.
    headings = []
    for index, line in enumerate(lines):
        if line.startswith("# ---"):
            first = index
            while first > 0 and lines[first - 1].startswith("#"):
                first -= 1
            headings.append((first + 1, lines[first][2:].split(" (")[0].strip()))
    found = {}
    for node in ast.parse(text).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        target = node.targets[0]
        if not isinstance(target, ast.Name):
            continue
        block = next((name for line, name in reversed(headings) if line < node.lineno), "")
        variable, default = _read_from_env(node.value)
        found[target.id] = (block, variable, _literal(default))
    return found


def _read_from_env(value: ast.expr) -> tuple[str | None, ast.expr | object]:
    """``env.int("NAME", default=...)`` and the like, and ``"NAME" in env``."""
    if isinstance(value, ast.Call):
        func = value.func
        is_env = (
            getattr(func, "id", None) == "env"
            or getattr(getattr(func, "value", None), "id", None) == "env"
        )
        if is_env and value.args and isinstance(value.args[0], ast.Constant):
            default = next((k.value for k in value.keywords if k.arg == "default"), _UNSET)
            return value.args[0].value, default
    if (
        isinstance(value, ast.Compare)
        and isinstance(value.left, ast.Constant)
        and isinstance(value.ops[0], ast.In)
        and getattr(value.comparators[0], "id", None) == "env"
    ):
        return value.left.value, _UNSET
    return None, value


def _literal(node: ast.expr | object) -> str:
    if node is _UNSET:
        return "unset"
    try:
        value = ast.literal_eval(node)
    except ValueError:
        return f"``{ast.unparse(node)}``"
    return f"``{value}``" if value != "" else "empty"


def setup(app):
    app.add_directive("pickup-transition-table", TransitionTable)
    app.add_directive("pickup-status-table", StatusTable)
    app.add_directive("pickup-status-set-table", StatusSetTable)
    app.add_directive("pickup-vendor-step-table", VendorStepTable)
    app.add_directive("error-code-table", ErrorCodeTable)
    app.add_directive("rest-error-status-table", RestErrorStatusTable)
    app.add_directive("notification-kind-table", NotificationKindTable)
    app.add_directive("celery-queue-table", CeleryQueueTable)
    app.add_directive("periodic-task-table", PeriodicTaskTable)
    app.add_directive("celery-task-options-table", CeleryTaskOptionsTable)
    app.add_directive("lifecycle-settings-table", SettingsTable)
    app.add_directive("security-settings-table", SecuritySettingsTable)
    app.add_directive("events-settings-table", EventsSettingsTable)
    app.add_directive("domain-event-table", DomainEventTable)
    app.add_directive("monitoring-settings-table", MonitoringSettingsTable)
    app.add_directive("metrics-table", MetricsTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
