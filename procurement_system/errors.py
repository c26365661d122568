"""Domain errors: values a client can act on.

Services raise these; the WebSocket consumers and the REST views map the same stable ``code`` to
their own framing (an error frame, an HTTP status). Another user's pickup is ``NotFound``, never
``Forbidden``, so ids cannot be probed.
"""

from typing import Any


class DomainError(Exception):
    code: str = "bad_request"
    default_message: str = "The request could not be processed."

    def __init__(self, message: str | None = None, *, errors: Any = None) -> None:
        self.message = message or self.default_message
        self.errors = errors
        super().__init__(self.message)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.errors is not None:
            body["errors"] = self.errors
        return body


class BadRequest(DomainError):
    code = "bad_request"
    default_message = "The message is malformed."


class ValidationError(DomainError):
    code = "validation_error"
    default_message = "Some fields are invalid."


class NotFound(DomainError):
    code = "not_found"
    default_message = "No such object."


class Forbidden(DomainError):
    code = "forbidden"
    default_message = "You are not allowed to do that."


class InvalidTransition(DomainError):
    code = "invalid_transition"
    default_message = "That change is not possible in the current status."


class RateLimited(DomainError):
    code = "rate_limited"
    default_message = "Too many messages; slow down."


ERROR_CODES: dict[str, str] = {
    "bad_request": "The frame itself is unusable: not JSON (NaN and Infinity included), not an "
    "object, binary, an unknown or missing action, a request_id that is not a string or is longer "
    "than 200 characters; an invalid ``?after`` on the notifications socket; one subscription "
    "more than a socket may hold.",
    "validation_error": "A field is missing, unknown, of the wrong type or out of range; "
    "``errors`` maps each field to its messages.",
    "not_found": "The object does not exist or is not yours to see.",
    "forbidden": "You can see the object but your role may not perform this action on it.",
    "invalid_transition": "The pickup's current status does not allow this action.",
    "rate_limited": "WebSocket: the frame was not processed because it came too fast: over the "
    "socket's frame rate (``WEBSOCKET_RATE`` a second, bursts of ``WEBSOCKET_BURST``; keeping on "
    "closes the socket with 4429), or a vendor's ``location`` more than once a second per "
    "pickup. Wait and send it again.",
    "not_authenticated": "REST only: no credentials, or a wrong or revoked token (HTTP 401). "
    "On the WebSocket the handshake closes with 4401 instead.",
    "method_not_allowed": "REST only: the endpoint does not take this HTTP method (405).",
    "not_acceptable": "REST only: the Accept header asks for something other than JSON (406).",
    "unsupported_media_type": "REST only: the body is not ``application/json`` (415).",
    "throttled": "REST only: too many requests from this user (or address, when anonymous); "
    "``retry_after`` and the Retry-After header say when to try again (429).",
    "internal_error": "An unexpected server error, logged on the server. A change that failed "
    "inside its transaction is rolled back; retry ``create`` with the same idempotency key.",
}

# The codes an error frame on the WebSocket can carry: every domain error's, and internal_error
# (procurement_system.websocket). The rest of ERROR_CODES belong to the REST API alone.
WEBSOCKET_ERROR_CODES = frozenset(
    {error.code for error in (DomainError, *DomainError.__subclasses__())} | {"internal_error"}
)
