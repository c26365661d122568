from collections.abc import Iterable
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q, QuerySet

from pickups.models import PickupRequest
from pickups.transitions import EXPIRABLE, TERMINAL, Status
from procurement_system.errors import NotFound
from vendors.models import Vendor
from vendors.selectors import vendor_ids_of_member


def pickups_visible_to(*, user: AbstractBaseUser) -> QuerySet[PickupRequest]:
    """The customer's own pickups and those offered or assigned to the user's vendors; every
    pickup for an operator (staff)."""
    pickups = PickupRequest.objects.select_related(
        "vendor", "customer", "receipt"
    ).prefetch_related("items", "rejections__vendor", "transitions", "receipt__lines")
    if user.is_staff:
        return pickups
    vendor_ids = vendor_ids_of_member(user_id=user.pk)
    return pickups.filter(Q(customer_id=user.pk) | Q(vendor_id__in=vendor_ids))


def pickup_get(*, user: AbstractBaseUser, pickup_id: int) -> PickupRequest:
    pickup = pickups_visible_to(user=user).filter(pk=pickup_id).first()
    if pickup is None:
        raise NotFound(f"Pickup {pickup_id} not found.")
    return pickup


def pickup_list(
    *, user: AbstractBaseUser, status: str | None = None, limit: int = 100
) -> list[PickupRequest]:
    """Newest first, at most ``limit``, optionally of one status."""
    qs = pickups_visible_to(user=user)
    if status:
        qs = qs.filter(status=status)
    return list(qs.order_by("-created_at", "-id")[:limit])


def pickup_detail(*, pickup_id: int) -> PickupRequest:
    """A pickup with everything its representation needs, for a caller that already checked
    access (the reply to a change the user was allowed to make)."""
    return (
        PickupRequest.objects.select_related("vendor", "customer", "receipt")
        .prefetch_related("items", "rejections__vendor", "transitions", "receipt__lines")
        .get(pk=pickup_id)
    )


def pickup_by_assignment_task(*, user: AbstractBaseUser, task_id: str) -> PickupRequest | None:
    """The pickup, visible to the user, whose assignment runs (or ran) as this task."""
    return pickups_visible_to(user=user).filter(assignment_task_id=task_id).first()


# --- the lifecycle sweeps: what is due, oldest first, at most ``limit`` ------------------------


def offers_due(*, now: datetime, limit: int) -> list[tuple[int, int]]:
    """(id, version) of offers whose deadline has passed; the version names the offer."""
    return list(
        PickupRequest.objects.filter(status=Status.OFFERED, offer_expires_at__lte=now)
        .order_by("offer_expires_at")
        .values_list("id", "version")[:limit]
    )


def retries_due(*, now: datetime, limit: int) -> list[int]:
    return list(
        PickupRequest.objects.filter(status=Status.UNASSIGNED, next_retry_at__lte=now)
        .order_by("next_retry_at")
        .values_list("id", flat=True)[:limit]
    )


def windows_ended(*, now: datetime, limit: int) -> list[int]:
    """Pickups whose window ended while no vendor had set off to collect them."""
    return list(
        PickupRequest.objects.filter(status__in=sorted(EXPIRABLE), window_end__lte=now)
        .order_by("window_end")
        .values_list("id", flat=True)[:limit]
    )


def stalled_pending(*, before: datetime, limit: int) -> list[tuple[int, str]]:
    """(id, assignment task id) of pickups pending since before ``before``: their assignment
    message was lost (a crash between commit and publish, a broker that was down) or waits
    behind a long queue."""
    return list(
        PickupRequest.objects.filter(status=Status.PENDING, status_changed_at__lt=before)
        .order_by("status_changed_at")
        .values_list("id", "assignment_task_id")[:limit]
    )


def completed_without_receipt(*, before: datetime, limit: int) -> list[int]:
    return list(
        PickupRequest.objects.filter(
            status=Status.COMPLETED, status_changed_at__lt=before, receipt__isnull=True
        )
        .order_by("status_changed_at")
        .values_list("id", flat=True)[:limit]
    )


def unassigned_for_vendor(*, vendor: Vendor, limit: int) -> list[int]:
    """Unassigned pickups the vendor could take: inside its service area's bounding box, every
    material one it collects, and not refused by it before. Oldest first."""
    codes = list(vendor.materials.values_list("material_id", flat=True))
    return list(
        PickupRequest.objects.filter(
            status=Status.UNASSIGNED,
            latitude__range=(vendor.min_lat, vendor.max_lat),
            longitude__range=(vendor.min_lon, vendor.max_lon),
        )
        .exclude(rejections__vendor_id=vendor.pk)
        .annotate(foreign=Count("items", filter=~Q(items__material_id__in=codes)))
        .filter(foreign=0)
        .order_by("created_at", "id")
        .values_list("id", flat=True)[:limit]
    )


# --- the browser pages --------------------------------------------------------------------------


def pickups_of_vendor(
    *, vendor_id: int, statuses: Iterable[str], limit: int = 50
) -> list[PickupRequest]:
    """The vendor's pickups in these statuses, oldest status change first (the offer that runs
    out soonest, the job waiting longest), for a caller that checked the user is a member."""
    return list(
        PickupRequest.objects.filter(vendor_id=vendor_id, status__in=list(statuses))
        .select_related("customer", "receipt")
        .prefetch_related("items__material")
        .order_by("status_changed_at", "id")[:limit]
    )


def vendor_history(*, vendor_id: int, limit: int = 20) -> list[PickupRequest]:
    """The vendor's finished pickups, newest first, with their receipts."""
    return list(
        PickupRequest.objects.filter(vendor_id=vendor_id, status__in=list(TERMINAL))
        .select_related("customer", "receipt")
        .prefetch_related("items__material")
        .order_by("-status_changed_at", "-id")[:limit]
    )
