"""Tables drawn from the code, so the documentation cannot drift from it.

Each directive reads one of the project's own tables (the transition table, the error codes and
their HTTP statuses, the notification kinds, the statuses) and renders it. The prose the code
does not hold (who fires an event, what a status means, which extra fields a notification
carries, when the REST API answers an error code) lives below, keyed by the code's own names; a
name the code has and this file lacks, or the other way round, is a build warning, and the
documentation build treats warnings as errors.
"""

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

# Who fires each event of the pickup state machine.
EVENT_TRIGGERS = {
    "assign": "The assignment task (``assign_vendor_task``): it reserved capacity at the "
    "nearest eligible vendor.",
    "no_vendor": "The assignment task: no vendor is eligible.",
    "retry": "The customer: ``update`` changing ``latitude``, ``longitude`` or ``items`` of an "
    "unassigned pickup; the assignment is queued again (see :ref:`unassigned-pickups`).",
    "accept": "A member of the offered vendor: ``accept``.",
    "vendor_reject": "A member of the offered vendor: ``reject``.",
    "customer_reject": "The customer: ``reject`` after the vendor accepted.",
    "start": 'A member of the vendor: ``update`` with ``"status": "en_route"``.',
    "pick_up": 'A member of the vendor: ``update`` with ``"status": "picked_up"`` '
    "(optionally with actual weights).",
    "complete": 'A member of the vendor: ``update`` with ``"status": "completed"``.',
    "cancel": "The customer: ``cancel``.",
}

# What each status means.
STATUS_MEANINGS = {
    "pending": "Created (or handed back by a rejection or a retry) and waiting for the "
    "assignment task.",
    "offered": "Offered to one vendor, which holds one unit of its capacity for it and must "
    "accept or reject.",
    "unassigned": "The assignment task found no eligible vendor.",
    "accepted": "The vendor took the job; its members now see the customer's contact details.",
    "en_route": "The vendor is on the way.",
    "picked_up": "The goods were collected; actual weights may have been recorded.",
    "completed": "The job is done and the vendor's capacity unit is released. Terminal.",
    "cancelled": "The customer withdrew the request. Terminal.",
    "expired": "Reserved and terminal; no transition in the current table leads to it.",
}

# The keys a notification's ``data`` carries besides ``pickup_id``, ``status`` and ``version``.
KIND_EXTRA_DATA = {
    "pickup.created": "",
    "pickup.updated": "``fields``: the names of the fields that changed, sorted.",
    "pickup.offered": "``distance_km``: distance from the vendor's base to the pickup, "
    "rounded to 0.01 km.",
    "pickup.unassigned": "",
    "pickup.accepted": "",
    "pickup.rejected": "``rejected_by`` (``vendor`` or ``customer``), ``reason``, "
    "``vendor_id`` (the vendor that was let go).",
    "pickup.cancelled": "``reason``.",
    "pickup.en_route": "",
    "pickup.picked_up": "",
    "pickup.completed": "",
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
}


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


def _cell(text: str) -> list[str]:
    lines = text.splitlines() or [""]
    return [lines[0]] + [f"    {line}" for line in lines[1:]]


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
        lines = [
            ".. list-table::",
            "   :header-rows: 1",
            f"   :widths: {' '.join(str(w) for w in self.widths)}",
            "",
        ]
        for row in [self.header, *self.rows()]:
            for index, cell in enumerate(row):
                first, *rest = _cell(cell or "\u2014")
                lines.append(f"   {'*' if index == 0 else ' '} - {first}")
                lines.extend(f"       {line}" for line in rest)
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


def setup(app):
    app.add_directive("pickup-transition-table", TransitionTable)
    app.add_directive("pickup-status-table", StatusTable)
    app.add_directive("pickup-status-set-table", StatusSetTable)
    app.add_directive("pickup-vendor-step-table", VendorStepTable)
    app.add_directive("error-code-table", ErrorCodeTable)
    app.add_directive("rest-error-status-table", RestErrorStatusTable)
    app.add_directive("notification-kind-table", NotificationKindTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
