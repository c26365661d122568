"""Drive the ASGI application's WebSocket routes in-process, through the real auth middleware."""

import json

from channels.testing.websocket import WebsocketCommunicator
from rest_framework.authtoken.models import Token

from procurement_system.asgi import application


def token_for(user) -> str:
    return Token.objects.get_or_create(user=user)[0].key


async def connect(path: str, key: str | None = None, headers=(), **kwargs) -> WebsocketCommunicator:
    all_headers = list(headers)
    if key is not None:
        all_headers.append((b"authorization", f"Token {key}".encode()))
    communicator = WebsocketCommunicator(application, path, headers=all_headers, **kwargs)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def ask(communicator: WebsocketCommunicator, frame: dict | str, timeout: float = 5) -> dict:
    text = frame if isinstance(frame, str) else json.dumps(frame)
    await communicator.send_to(text_data=text)
    return json.loads(await communicator.receive_from(timeout=timeout))
