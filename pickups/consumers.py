"""``/ws/pickups/``: customers and vendor members drive pickups with JSON action frames."""

from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from rest_framework import serializers

from pickups import selectors, services
from pickups.models import PickupRequest
from pickups.serializers import (
    PickupChangeSerializer,
    PickupCreateSerializer,
    PickupIdSerializer,
    PickupSerializer,
    ReasonSerializer,
    VendorStepSerializer,
)
from pickups.transitions import Status
from procurement_system.serializers import validated
from procurement_system.websocket import JsonActionConsumer


def _fields(frame: dict[str, Any], *names: str) -> dict[str, Any]:
    """The action's own fields from a frame that also carries action, request_id, pickup_id."""
    return {name: frame[name] for name in names if name in frame}


class CreateFrameSerializer(serializers.Serializer):
    idempotency_key = serializers.CharField(max_length=100, required=False, allow_null=True)


class ListFrameSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=[s.value for s in Status], required=False)
    limit = serializers.IntegerField(
        min_value=1, max_value=settings.PICKUP_LIST_LIMIT, default=settings.PICKUP_LIST_LIMIT
    )


class PickupConsumer(JsonActionConsumer):
    actions = frozenset({"create", "update", "reject", "accept", "cancel", "get", "list", "ping"})

    async def action_create(self, content: dict[str, Any]) -> dict[str, Any]:
        frame = validated(CreateFrameSerializer, content)
        fields = validated(PickupCreateSerializer, content.get("data"))
        return await self._run(
            lambda: services.pickup_create(
                customer=self.user, idempotency_key=frame.get("idempotency_key"), **fields
            ),
            "pickup.created",
        )

    async def action_update(self, content: dict[str, Any]) -> dict[str, Any]:
        pickup_id = self._pickup_id(content)
        if "status" in content:  # a vendor member moves the job on
            step = validated(VendorStepSerializer, _fields(content, "status", "items"))
            return await self._run(
                lambda: services.pickup_advance(
                    pickup_id=pickup_id,
                    by=self.user,
                    status=step["status"],
                    actual_weights=step.get("items"),
                ),
                f"pickup.{step['status']}",
            )
        changes = validated(PickupChangeSerializer, content.get("data"))
        return await self._run(
            lambda: services.pickup_update_details(
                pickup_id=pickup_id, by=self.user, changes=dict(changes)
            ),
            "pickup.updated",
        )

    async def action_reject(self, content: dict[str, Any]) -> dict[str, Any]:
        pickup_id, reason = (
            self._pickup_id(content),
            validated(ReasonSerializer, _fields(content, "reason"))["reason"],
        )
        return await self._run(
            lambda: services.pickup_reject(pickup_id=pickup_id, by=self.user, reason=reason),
            "pickup.rejected",
        )

    async def action_accept(self, content: dict[str, Any]) -> dict[str, Any]:
        pickup_id = self._pickup_id(content)
        return await self._run(
            lambda: services.pickup_accept(pickup_id=pickup_id, by=self.user), "pickup.accepted"
        )

    async def action_cancel(self, content: dict[str, Any]) -> dict[str, Any]:
        pickup_id, reason = (
            self._pickup_id(content),
            validated(ReasonSerializer, _fields(content, "reason"))["reason"],
        )
        return await self._run(
            lambda: services.pickup_cancel(pickup_id=pickup_id, by=self.user, reason=reason),
            "pickup.cancelled",
        )

    async def action_get(self, content: dict[str, Any]) -> dict[str, Any]:
        pickup_id = self._pickup_id(content)

        @database_sync_to_async
        def fetched() -> dict:
            return self._represent(selectors.pickup_get(user=self.user, pickup_id=pickup_id))

        return {"type": "pickup.detail", "pickup": await fetched()}

    async def action_list(self, content: dict[str, Any]) -> dict[str, Any]:
        options = validated(ListFrameSerializer, content)

        @database_sync_to_async
        def listed() -> list[dict]:
            pickups = selectors.pickup_list(
                user=self.user, status=options.get("status"), limit=options["limit"]
            )
            return [self._represent(pickup) for pickup in pickups]

        return {"type": "pickup.list", "pickups": await listed()}

    async def action_ping(self, content: dict[str, Any]) -> dict[str, Any]:
        return {"type": "pong"}

    # ---------------------------------------------------------------------------------------

    @staticmethod
    def _pickup_id(content: dict[str, Any]) -> int:
        return validated(PickupIdSerializer, content)["pickup_id"]

    def _represent(self, pickup: PickupRequest) -> dict:
        return PickupSerializer(pickup, context={"viewer": self.user}).data

    async def _run(self, call, reply_type: str) -> dict[str, Any]:
        """Run a service in a worker thread; reply with the pickup as it is after the change."""

        @database_sync_to_async
        def run() -> dict[str, Any]:
            result = call()
            pickup, created = result if isinstance(result, tuple) else (result, None)
            reply = {"pickup": self._represent(selectors.pickup_detail(pickup_id=pickup.pk))}
            if created is not None:
                reply["created"] = created
            return reply

        return {"type": reply_type, **await run()}
