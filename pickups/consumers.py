"""``/ws/pickups/``: customers and vendor members drive pickups with JSON action frames."""

from typing import Any

from django.conf import settings
from rest_framework import serializers

from pickups import selectors, services, tracking
from pickups.models import PickupRequest
from pickups.serializers import (
    LocationInputSerializer,
    PickupChangeSerializer,
    PickupCreateSerializer,
    PickupIdSerializer,
    PickupSerializer,
    ReasonSerializer,
    VendorStepSerializer,
)
from pickups.transitions import Status
from procurement_system.database import database_sync_to_async
from procurement_system.errors import BadRequest
from procurement_system.serializers import validated
from procurement_system.websocket import JsonActionConsumer
from vendors.selectors import vendor_ids_of_member, vendors_nearby
from vendors.serializers import NearbySerializer, VendorNearbySerializer


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
    actions = frozenset(
        {
            "create",
            "update",
            "reject",
            "accept",
            "cancel",
            "get",
            "list",
            "location",
            "subscribe",
            "unsubscribe",
            "nearby",
            "ping",
        }
    )

    async def joined(self) -> None:
        self.following: dict[int, tracking.Party] = {}  # pickup id -> its parties, when joined

    async def disconnect(self, code: int) -> None:
        for pickup_id in getattr(self, "following", {}):
            await self.leave(tracking.pickup_room(pickup_id))
        await super().disconnect(code)

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

    # --- live tracking ----------------------------------------------------------------------

    async def action_location(self, content: dict[str, Any]) -> dict[str, Any]:
        """A vendor member en route reports where they are; the pickup's followers see it."""
        pickup_id = self._pickup_id(content)
        point = validated(
            LocationInputSerializer, _fields(content, "lat", "lon", "heading", "speed")
        )
        position, party = await database_sync_to_async(tracking.pickup_record_location)(
            pickup_id=pickup_id,
            by=self.user,
            latitude=point["lat"],
            longitude=point["lon"],
            heading=point["heading"],
            speed=point["speed"],
        )
        await self.channel_layer.group_send(
            tracking.pickup_room(pickup_id),
            {
                "type": "pickup.location",
                "pickup_id": pickup_id,
                "customer_id": party.customer_id,
                "vendor_id": party.vendor_id,
                "position": position,
            },
        )
        return {"type": "location.recorded", "pickup_id": pickup_id, **position}

    async def action_subscribe(self, content: dict[str, Any]) -> dict[str, Any]:
        """Follow a pickup's live events (``vendor.location``); its parties only."""
        pickup_id = self._pickup_id(content)
        pickup, party = await database_sync_to_async(tracking.pickup_party)(
            user=self.user, pickup_id=pickup_id
        )
        if pickup_id not in self.following:
            if len(self.following) >= settings.TRACKING_MAX_SUBSCRIPTIONS:
                raise BadRequest(
                    f"Follow at most {settings.TRACKING_MAX_SUBSCRIPTIONS} pickups per socket."
                )
            await self.channel_layer.group_add(tracking.pickup_room(pickup_id), self.channel_name)
        self.following[pickup_id] = party
        return {
            "type": "pickup.subscribed",
            "pickup_id": pickup_id,
            "status": pickup.status,
            "vendor_position": pickup.vendor_position,
        }

    async def action_unsubscribe(self, content: dict[str, Any]) -> dict[str, Any]:
        pickup_id = self._pickup_id(content)
        if self.following.pop(pickup_id, None) is not None:
            await self.channel_layer.group_discard(
                tracking.pickup_room(pickup_id), self.channel_name
            )
        return {"type": "pickup.unsubscribed", "pickup_id": pickup_id}

    async def pickup_location(self, event: dict[str, Any]) -> None:
        """A position from the pickup's room. Sent on only while this user is still a party:
        the customer, or a member of the vendor that sent it (not of a vendor let go since)."""
        party = self.following.get(event["pickup_id"])
        if party is None:
            return
        if self.user.pk != event["customer_id"]:
            # A member of the vendor that sent it, now: not of a vendor let go since, and not
            # someone who has left the vendor since subscribing.
            vendor_ids = await database_sync_to_async(vendor_ids_of_member)(user_id=self.user.pk)
            if event["vendor_id"] != party.vendor_id or event["vendor_id"] not in vendor_ids:
                return
        await self.send_json(
            {"type": "vendor.location", "pickup_id": event["pickup_id"], **event["position"]}
        )

    async def action_nearby(self, content: dict[str, Any]) -> dict[str, Any]:
        """Active, online vendors around a point, nearest first."""
        query = validated(NearbySerializer, _fields(content, "lat", "lon", "radius_km", "material"))

        @database_sync_to_async
        def found() -> list[dict]:
            vendors = vendors_nearby(
                latitude=query["lat"],
                longitude=query["lon"],
                radius_km=query["radius_km"],
                material=query.get("material"),
            )
            return VendorNearbySerializer(vendors, many=True).data

        return {"type": "vendors.nearby", "vendors": await found()}

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
