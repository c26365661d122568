"""The JSON action protocol shared by the platform's WebSocket consumers.

Clients send text frames ``{"action": ..., "request_id": ..., ...}``; each action maps to one
handler that validates, calls one service, and returns the reply. Every failure becomes an error
frame ``{"type": "error", "request_id", "code", "message", "errors"?}`` and the socket stays open
(the multichat pattern): only an anonymous handshake (4401) or an oversized frame (1009) closes it.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from rest_framework.utils import json

from procurement_system.errors import BadRequest, DomainError

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_MESSAGE_TOO_BIG = 1009

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class JsonActionConsumer(AsyncWebsocketConsumer):
    #: the actions this consumer serves; ``action_<name>`` handles each
    actions: frozenset[str] = frozenset()

    async def connect(self) -> None:
        user = self.scope.get("user")
        # Accept first: a close before accept is an HTTP 403 and the client never sees the code.
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        self.token_group = self.scope.get("token_group")
        if self.token_group:
            await self.channel_layer.group_add(self.token_group, self.channel_name)
        await self.joined()

    async def joined(self) -> None:
        """Called once an authenticated socket is open."""

    async def disconnect(self, code: int) -> None:
        if getattr(self, "token_group", None):
            await self.channel_layer.group_discard(self.token_group, self.channel_name)

    async def auth_revoked(self, event: dict[str, Any]) -> None:
        """The token this socket authenticated with was revoked (``type: auth.revoked``)."""
        await self.close(code=CLOSE_UNAUTHENTICATED)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not hasattr(self, "user"):
            return  # the socket is closing after a failed handshake
        if text_data is None:
            await self.send_error(None, BadRequest("Send JSON text frames, not binary."))
            return
        if len(text_data.encode()) > settings.WEBSOCKET_MAX_FRAME_BYTES:
            await self.close(code=CLOSE_MESSAGE_TOO_BIG)
            return
        try:
            content = json.loads(text_data)  # strict: NaN and Infinity are refused
        except ValueError:
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
        try:
            reply = await getattr(self, f"action_{action}")(content)
        except DomainError as error:
            await self.send_error(request_id, error)
            return
        except Exception:
            logger.exception("unexpected error in %s action %r", type(self).__name__, action)
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

    async def send_json(self, content: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(content))

    async def send_error(self, request_id: str | None, error: DomainError) -> None:
        await self.send_json({"type": "error", "request_id": request_id, **error.as_dict()})
