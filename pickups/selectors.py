from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet

from pickups.models import PickupRequest
from procurement_system.errors import NotFound
from vendors.selectors import vendor_ids_of_member


def pickups_visible_to(*, user: AbstractBaseUser) -> QuerySet[PickupRequest]:
    """The customer's own pickups and those offered or assigned to the user's vendors; every
    pickup for an operator (staff)."""
    pickups = PickupRequest.objects.select_related("vendor", "customer").prefetch_related(
        "items", "rejections__vendor", "transitions"
    )
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
        PickupRequest.objects.select_related("vendor", "customer")
        .prefetch_related("items", "rejections__vendor", "transitions")
        .get(pk=pickup_id)
    )


def pickup_by_assignment_task(*, user: AbstractBaseUser, task_id: str) -> PickupRequest | None:
    """The pickup, visible to the user, whose assignment runs (or ran) as this task."""
    return pickups_visible_to(user=user).filter(assignment_task_id=task_id).first()
