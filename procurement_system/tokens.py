"""API tokens: issuing, revoking, and closing the sockets that a revoked token opened.

Every socket authenticated with a token joins a channel-layer group named after a hash of the
token (never the token itself, which would then sit in Redis); revoking the token tells that
group to close, so a leaked token stops working everywhere at once.
"""

import hashlib

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import permissions, serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle

from procurement_system.rest import AUTHENTICATED, error_responses


def token_group(key: str) -> str:
    return f"Token_{hashlib.sha256(key.encode()).hexdigest()[:32]}"


def token_revoke(*, user: AbstractBaseUser) -> bool:
    """Delete the user's API token and close every socket it opened; False if it had none."""
    with transaction.atomic():
        keys = list(Token.objects.filter(user=user).values_list("key", flat=True))
        Token.objects.filter(user=user).delete()
        for key in keys:
            transaction.on_commit(lambda key=key: _close_sockets(key))
    return bool(keys)


def _close_sockets(key: str) -> None:
    async_to_sync(get_channel_layer().group_send)(token_group(key), {"type": "auth.revoked"})


class TokenView(ObtainAuthToken):
    """``POST`` exchanges a username and password for the user's token; ``DELETE`` revokes it."""

    # Password guessing is throttled like any anonymous request.
    throttle_classes = [AnonRateThrottle]
    parser_classes = [JSONParser]  # JSON like every other endpoint

    def get_permissions(self):
        if self.request.method == "DELETE":
            return [permissions.IsAuthenticated()]
        return []

    def get_authenticators(self):
        # Credentials are what POST checks itself; DELETE needs to know who is asking.
        if self.request is not None and self.request.method == "DELETE":
            return super().get_authenticators()
        return []

    @extend_schema(
        summary="Get your token",
        description="Exchange a username and password for the user's API token (the same token "
        "until it is revoked). Send it as `Authorization: Token <key>`.",
        request=AuthTokenSerializer,
        responses={
            200: inline_serializer("Token", {"token": serializers.CharField()}),
            **error_responses("validation_error", "bad_request", "throttled"),
        },
        examples=[
            OpenApiExample(
                "Demo customer",
                request_only=True,
                value={"username": "alice", "password": "demo-pass-123"},
            ),
            OpenApiExample(
                "Token",
                response_only=True,
                value={"token": "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"},
            ),
        ],
    )
    def post(self, request: Request, *args, **kwargs) -> Response:
        return super().post(request, *args, **kwargs)

    @extend_schema(
        summary="Revoke your token",
        description="Deletes the user's API token; every socket opened with it is closed with "
        "4401. Get a new one with POST.",
        request=None,
        responses={204: None, **error_responses(*AUTHENTICATED)},
    )
    def delete(self, request: Request) -> Response:
        token_revoke(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
