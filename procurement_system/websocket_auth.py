"""WebSocket handshake authentication and Origin checking.

Browsers authenticate with the Django session cookie; Postman, Thunder Client and apps send an
``Authorization: Token <key>`` header (a DRF token from ``POST /api/auth/token/``). A header that
is present but wrong leaves the user anonymous even if a session cookie came along, so a client
always gets the identity it asked for. Consumers close anonymous sockets with code 4401.
"""

from channels.auth import AuthMiddlewareStack
from channels.middleware import BaseMiddleware
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from rest_framework.authtoken.models import Token

from procurement_system.database import database_sync_to_async
from procurement_system.tokens import token_group


@database_sync_to_async
def _user_for_token(key: str):
    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return AnonymousUser()
    return token.user


def _token_from_headers(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, key = value.decode("latin-1").strip().partition(" ")
            return key.strip() if scheme.lower() == "token" else ""
    return None


class TokenAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        key = _token_from_headers(scope.get("headers", []))
        if key is not None:
            user = await _user_for_token(key) if key else AnonymousUser()
            # The socket joins this group so that revoking the token closes it.
            group = token_group(key) if user.is_authenticated else None
            scope = dict(scope, user=user, token_group=group)
        return await super().__call__(scope, receive, send)


def TokenOrSessionAuthMiddleware(inner):  # noqa: N802 - reads like the middleware classes it wraps
    return AuthMiddlewareStack(TokenAuthMiddleware(inner))


class OptionalOriginValidator(OriginValidator):
    """Check Origin against ALLOWED_HOSTS when a client sends one.

    Browsers always send Origin, and that is where cross-site WebSocket hijacking comes from, so a
    browser from a foreign site is refused (HTTP 403 at the handshake). Non-browser clients such
    as Postman or a mobile app often send no Origin at all; they cannot ride on a victim's
    cookies and must present a token, so a missing Origin is allowed.
    """

    def __init__(self, application):
        super().__init__(application, settings.ALLOWED_HOSTS)

    def valid_origin(self, parsed_origin) -> bool:
        if parsed_origin is None:
            return True
        return super().valid_origin(parsed_origin)
