"""The JSON action protocol shared by the platform's WebSocket consumers.

Clients send text frames ``{"action": ..., "request_id": ..., ...}``; each action maps to one
handler that validates, calls one service, and returns the reply. Every failure becomes an error
frame ``{"type": "error", "request_id", "code", "message", "errors"?}`` and the socket stays open
(the multichat pattern). Only these close it: an anonymous handshake or a revoked token (4401), a
user who already holds ``WEBSOCKET_MAX_PER_USER`` sockets (4409), an oversized frame (1009), and
a client that keeps sending after its frames were refused for exceeding the frame rate (4429).
Open sockets and every frame (by action and outcome) are counted and timed for ``/metrics``, and
each frame logs with a context of its own (``procurement_system.observability``).
"""

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from rest_framework.utils import json

from procurement_system import metrics, observability
from procurement_system.connection_limits import FrameRateLimiter, SocketSlot
from procurement_system.errors import BadRequest, DomainError, RateLimited

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_TOO_MANY_SOCKETS = 4409
CLOSE_RATE_LIMITED = 4429
CLOSE_MESSAGE_TOO_BIG = 1009

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class JsonActionConsumer(AsyncWebsocketConsumer):
    #: the actions this consumer serves; ``action_<name>`` handles each
    actions: frozenset[str] = frozenset()
    #: set once the server closes the socket: frames still on their way are ignored
    closing = False
    slot: SocketSlot | None = None
    #: counted in the open-connections gauge (from accept until disconnect)
    counted = False
    #: the frame being answered: its action (once known) and outcome, for the metrics
    frame_action = metrics.UNKNOWN_ACTION
    frame_outcome = "ok"

    async def connect(self) -> None:
        user = self.scope.get("user")
        authenticated = user is not None and user.is_authenticated
        has_slot = False
        if authenticated:
            # Before accepting, so that nothing a client may expect once it is open comes later.
            self.slot = SocketSlot(user.pk, self.channel_name, self.channel_layer)
            has_slot = await self.slot.acquire()
        # Accept first: a close before accept is an HTTP 403 and the client never sees the code.
        await self.accept()
        metrics.socket_opened(self.endpoint)
        self.counted = True
        if not authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not has_slot:
            await self.close(code=CLOSE_TOO_MANY_SOCKETS)
            return
        self.frames = FrameRateLimiter.from_settings()
        self.user = user
        self.token_group = self.scope.get("token_group")
        if self.token_group:
            await self.channel_layer.group_add(self.token_group, self.channel_name)
        await self.joined()

    async def joined(self) -> None:
        """Called once an authenticated socket is open."""

    async def disconnect(self, code: int) -> None:
        if self.counted:
            metrics.socket_closed(self.endpoint)
            self.counted = False
        if getattr(self, "token_group", None):
            await self.leave(self.token_group)
        if self.slot is not None:
            await self.slot.release()

    async def leave(self, group: str) -> None:
        """Leave a channel-layer group as the socket closes. A failure (Redis away, or busy with
        thousands of sockets closing at once) must not cut the rest of the cleanup short: the
        membership then lapses by itself (channels-redis' group expiry), and what is sent to it
        meanwhile is dropped by this process."""
        try:
            await self.channel_layer.group_discard(group, self.channel_name)
        except Exception as error:
            logger.warning("a closing socket could not leave %s (%s); it lapses", group, error)

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        self.closing = True
        await super().close(code=code, reason=reason)

    async def auth_revoked(self, event: dict[str, Any]) -> None:
        """The token this socket authenticated with was revoked (``type: auth.revoked``)."""
        await self.close(code=CLOSE_UNAUTHENTICATED)

    @property
    def endpoint(self) -> str:
        """The route the socket connected to (``/ws/pickups/``), the metrics' label."""
        return self.scope.get("path", "")

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing or not hasattr(self, "user"):
            return  # the socket is closing (a failed handshake, a revoked token, ...)
        started = time.perf_counter()
        self.frame_action, self.frame_outcome = metrics.UNKNOWN_ACTION, "ok"
        try:
            # Each frame logs with a context of its own: what a service bound for one pickup
            # (its correlation id) does not leak into the next frame's lines.
            with observability.log_context(user_id=self.user.pk):
                await self.answer(text_data, bytes_data)
        finally:
            metrics.frame_answered(
                self.endpoint,
                self.frame_action,
                "closed" if self.closing else self.frame_outcome,
                time.perf_counter() - started,
            )

    async def answer(self, text_data: str | None, bytes_data: bytes | None) -> None:
        """Validate one frame, run its action and send the reply or the error frame."""
        size = len(text_data.encode()) if text_data is not None else len(bytes_data or b"")
        if size > settings.WEBSOCKET_MAX_FRAME_BYTES:
            await self.close(code=CLOSE_MESSAGE_TOO_BIG)
            return
        if not self.frames.allow():
            await self.refuse(text_data)
            return
        if text_data is None:
            await self.send_error(None, BadRequest("Send JSON text frames, not binary."))
            return
        try:
            content = json.loads(text_data)  # strict: NaN and Infinity are refused
        except (ValueError, RecursionError):  # RecursionError: nested ~1000 levels deep
            await self.send_error(None, BadRequest("The frame is not valid JSON."))
            return
        if not isinstance(content, dict):
            await self.send_error(None, BadRequest("The frame must be a JSON object."))
            return
        request_id = content.get("request_id")
        if request_id is not None and not isinstance(request_id, str):
            await self.send_error(None, BadRequest("request_id must be a string."))
            return
        if len(request_id or "") > 200:
            await self.send_error(None, BadRequest("request_id may be at most 200 characters."))
            return
        action = content.get("action")
        if not isinstance(action, str) or action not in self.actions:
            await self.send_error(
                request_id,
                BadRequest(f"Unknown action. Use one of: {', '.join(sorted(self.actions))}."),
            )
            return
        self.frame_action = action
        try:
            reply = await getattr(self, f"action_{action}")(content)
        except DomainError as error:
            await self.send_error(request_id, error)
            return
        except Exception:
            logger.exception("unexpected error in %s action %r", type(self).__name__, action)
            self.frame_outcome = "internal_error"
            await self.send_json(
                {
                    "type": "error",
                    "request_id": request_id,
                    "code": "internal_error",
                    "message": "Something went wrong on the server; it has been logged.",
                }
            )
            return
        await self.send_json({"type": reply.pop("type"), "request_id": request_id, **reply})

    async def refuse(self, text_data: str | None) -> None:
        """A frame over the rate: answered with ``rate_limited`` and not processed, or, when the
        client keeps on regardless, the socket is closed."""
        if self.frames.abusive:
            logger.warning("closing a socket of user %s: frame rate abused", self.user.pk)
            await self.close(code=CLOSE_RATE_LIMITED)
            return
        rate, burst = self.frames.rate, self.frames.burst
        await self.send_error(
            _request_id_of(text_data),
            RateLimited(
                f"Too many frames: at most {rate:g} a second, {burst} at once. This frame was "
                "not processed; wait and send it again."
            ),
        )

    async def send_json(self, content: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(content))

    async def send_error(self, request_id: str | None, error: DomainError) -> None:
        self.frame_outcome = error.code
        await self.send_json({"type": "error", "request_id": request_id, **error.as_dict()})


def _request_id_of(text_data: str | None) -> str | None:
    """The frame's ``request_id`` when it has a valid one, so a refusal can carry it."""
    try:
        content = json.loads(text_data) if text_data is not None else None
    except (ValueError, RecursionError):
        return None
    request_id = content.get("request_id") if isinstance(content, dict) else None
    return request_id if isinstance(request_id, str) and len(request_id) <= 200 else None
