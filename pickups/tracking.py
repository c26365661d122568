"""Live tracking: a vendor member en route reports positions; the pickup's parties follow them.

Positions travel through the pickup's own room group (``Pickup_<id>``), which only its customer
and the members of its vendor may join. They are ephemeral: the last one is kept on the pickup,
the trail is pruned after ``LOCATION_RETENTION_HOURS``.
"""

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.utils import timezone

from pickups.models import LocationPoint, PickupRequest
from pickups.transitions import Status
from procurement_system.errors import Forbidden, InvalidTransition, NotFound, RateLimited
from vendors.selectors import vendor_ids_of_member


def pickup_room(pickup_id: int) -> str:
    return f"Pickup_{pickup_id}"


@dataclass(frozen=True)
class Party:
    """Who may follow a pickup: its customer and the members of the vendor holding it."""

    customer_id: int
    vendor_id: int | None


def pickup_party(*, user: AbstractBaseUser, pickup_id: int) -> tuple[PickupRequest, Party]:
    """The pickup, if the user is one of its parties; anyone else gets NotFound."""
    pickup = PickupRequest.objects.filter(pk=pickup_id).first()
    if pickup is None or not (
        pickup.customer_id == user.pk
        or (pickup.vendor_id and pickup.vendor_id in vendor_ids_of_member(user_id=user.pk))
    ):
        raise NotFound(f"Pickup {pickup_id} not found.")
    return pickup, Party(pickup.customer_id, pickup.vendor_id)


def pickup_record_location(
    *,
    pickup_id: int,
    by: AbstractBaseUser,
    latitude: float,
    longitude: float,
    heading: float | None = None,
    speed: float | None = None,
) -> tuple[dict, Party]:
    """Record where the vendor is on its way to the pickup; return the position and the party
    it is for. Only members of the pickup's vendor, only while en route, and at most one
    position per pickup per ``LOCATION_MIN_INTERVAL_SECONDS`` (``RateLimited`` otherwise,
    counted across every socket and process through the shared cache)."""
    pickup, party = pickup_party(user=by, pickup_id=pickup_id)
    if party.vendor_id is None or party.vendor_id not in vendor_ids_of_member(user_id=by.pk):
        raise Forbidden("Only a member of the pickup's vendor can report its position.")
    if pickup.status != Status.EN_ROUTE:
        raise InvalidTransition(f"Positions are taken while en route, not {pickup.status}.")
    interval = settings.LOCATION_MIN_INTERVAL_SECONDS
    if not cache.add(f"pickup-location:{pickup_id}", 1, timeout=interval):
        raise RateLimited(f"At most one position every {interval} s per pickup.")
    now = timezone.now()
    LocationPoint.objects.create(
        pickup_id=pickup_id,
        vendor_id=party.vendor_id,
        latitude=latitude,
        longitude=longitude,
        heading=heading,
        speed=speed,
        recorded_at=now,
    )
    position = {
        "lat": latitude,
        "lon": longitude,
        "heading": heading,
        "speed": speed,
        "at": now.isoformat().replace("+00:00", "Z"),
    }
    # Only while still en route: a position must not land on a pickup that moved on meanwhile.
    PickupRequest.objects.filter(pk=pickup_id, status=Status.EN_ROUTE).update(
        vendor_position=position
    )
    return position, party
