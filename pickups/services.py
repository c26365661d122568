"""Every change to a pickup request happens here, inside a transaction, under the pickup's lock.

Every adapter (the WebSocket consumers, the Celery tasks) calls these functions, so each rule is
written once.
Work that must follow a change (assignment, notifications) is enqueued only after the
transaction commits.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from notifications.dispatch import notify
from pickups.models import PickupItem, PickupRejection, PickupRequest, PickupTransition
from pickups.transitions import (
    CAPACITY_HELD,
    EDITABLE,
    RELOCATABLE,
    VENDOR_STEPS,
    Event,
    Status,
    next_status,
)
from procurement_system.errors import Forbidden, InvalidTransition, NotFound, ValidationError
from vendors.models import Material, Vendor
from vendors.selectors import vendor_candidates, vendor_ids_of_member, vendor_member_ids
from vendors.services import vendor_release_capacity, vendor_reserve_capacity


@dataclass(frozen=True)
class ItemInput:
    material: str
    estimated_kg: Decimal


# --- creating -------------------------------------------------------------------------------


def pickup_create(
    *,
    customer: AbstractBaseUser,
    address: str,
    latitude: float,
    longitude: float,
    window_start: datetime,
    window_end: datetime,
    items: list[ItemInput],
    notes: str = "",
    contact_phone: str = "",
    idempotency_key: str | None = None,
) -> tuple[PickupRequest, bool]:
    """Create a pickup request and queue its vendor assignment; return it and whether it is new.

    The same ``idempotency_key`` from the same customer returns the pickup it first created, even
    when both requests arrive at once, so a client may safely resend after a lost reply.
    """
    if idempotency_key:
        existing = _pickup_by_key(customer=customer, key=idempotency_key)
        if existing is not None:
            return existing, False
    _validate_window(window_start, window_end)
    _validate_items(items)
    try:
        with transaction.atomic():
            pickup = PickupRequest.objects.create(
                customer=customer,
                address=address,
                latitude=latitude,
                longitude=longitude,
                window_start=window_start,
                window_end=window_end,
                notes=notes,
                contact_phone=contact_phone,
                idempotency_key=idempotency_key or None,
            )
            _store_items(pickup, items)
            PickupTransition.objects.create(
                pickup=pickup,
                event="create",
                from_status="",
                to_status=pickup.status,
                actor=customer,
            )
            _announce(
                pickup,
                "pickup.created",
                f"Pickup #{pickup.pk} was received; looking for a vendor.",
                vendor_id=None,
            )
            _enqueue_assignment(pickup)
    except IntegrityError:
        existing = (
            _pickup_by_key(customer=customer, key=idempotency_key) if idempotency_key else None
        )
        if existing is None:
            raise
        return existing, False
    return pickup, True


def _pickup_by_key(*, customer: AbstractBaseUser, key: str) -> PickupRequest | None:
    return PickupRequest.objects.filter(customer=customer, idempotency_key=key).first()


def _store_items(pickup: PickupRequest, items: list[ItemInput]) -> None:
    PickupItem.objects.bulk_create(
        PickupItem(pickup=pickup, material_id=i.material, estimated_kg=i.estimated_kg)
        for i in items
    )


def _validate_window(start: datetime, end: datetime) -> None:
    errors: dict[str, list[str]] = {}
    if start >= end:
        errors["window_end"] = ["The window must end after it starts."]
    elif end <= timezone.now():
        errors["window_end"] = ["The window must end in the future."]
    elif end - start > timedelta(days=settings.PICKUP_MAX_WINDOW_DAYS):
        errors["window_end"] = [
            f"A window may span at most {settings.PICKUP_MAX_WINDOW_DAYS} days."
        ]
    if errors:
        raise ValidationError(errors=errors)


def _validate_items(items: list[ItemInput]) -> None:
    codes = [i.material for i in items]
    if not codes:
        raise ValidationError(errors={"items": ["At least one item is required."]})
    if len(codes) != len(set(codes)):
        raise ValidationError(errors={"items": ["Each material may appear only once."]})
    known = set(Material.objects.filter(code__in=codes).values_list("code", flat=True))
    unknown = sorted(set(codes) - known)
    if unknown:
        raise ValidationError(errors={"items": [f"Unknown material: {', '.join(unknown)}."]})


# --- assignment ------------------------------------------------------------------------------


def pickup_assign_vendor(*, pickup_id: int) -> PickupRequest | None:
    """Offer a pending pickup to the nearest eligible vendor, or mark it unassigned.

    Idempotent: a pickup that is no longer pending (assigned by an earlier delivery of the same
    task, cancelled meanwhile) is left as it is, so a redelivered task never offers twice.
    """
    with transaction.atomic():
        pickup = PickupRequest.objects.select_for_update().filter(pk=pickup_id).first()
        if pickup is None or pickup.status != Status.PENDING:
            return pickup
        candidates = vendor_candidates(
            latitude=pickup.latitude,
            longitude=pickup.longitude,
            material_codes=list(pickup.items.values_list("material_id", flat=True)),
            exclude_vendor_ids=set(pickup.rejections.values_list("vendor_id", flat=True)),
        )
        for candidate in candidates:
            # The candidate query saw free capacity, but a concurrent assignment may have taken
            # it since; the conditional reserve is the decision.
            if vendor_reserve_capacity(vendor_id=candidate.vendor.id):
                _change(pickup, Event.ASSIGN, actor=None, vendor=candidate.vendor)
                data = {"distance_km": round(candidate.distance_km, 2)}
                _announce(
                    pickup,
                    "pickup.offered",
                    f"New offer: pickup #{pickup.pk}, {_items_text(pickup)}, "
                    f"{candidate.distance_km:.1f} km away.",
                    customer_message=f"Pickup #{pickup.pk} was offered to {candidate.vendor.name}.",
                    extra=data,
                )
                return pickup
        _change(pickup, Event.NO_VENDOR, actor=None)
        _announce(
            pickup,
            "pickup.unassigned",
            f"No vendor is available for pickup #{pickup.pk} right now.",
            vendor_id=None,
        )
        return pickup


def _enqueue_assignment(pickup: PickupRequest) -> None:
    """Queue the assignment after commit under an id chosen now, so the pickup can name the
    task (``assignment_task_id``) that a client may poll at ``/api/tasks/<id>/``."""
    # Imported here: the task module imports this one.
    from pickups.tasks import assign_vendor_task

    pickup.assignment_task_id = str(uuid.uuid4())
    pickup.save(update_fields=["assignment_task_id"])
    assign_vendor_task.apply_async_on_commit((pickup.pk,), task_id=pickup.assignment_task_id)


# --- the vendor's side ----------------------------------------------------------------------


def pickup_accept(*, pickup_id: int, by: AbstractBaseUser) -> PickupRequest:
    with transaction.atomic():
        pickup = _locked_for_vendor(pickup_id, by)
        _change(pickup, Event.ACCEPT, actor=by)
        _announce(pickup, "pickup.accepted", f"{pickup.vendor.name} accepted pickup #{pickup.pk}.")
        return pickup


def pickup_advance(
    *,
    pickup_id: int,
    by: AbstractBaseUser,
    status: str,
    actual_weights: dict[str, Decimal] | None = None,
) -> PickupRequest:
    """Move an accepted job to its next status: en_route, picked_up (with weights), completed."""
    try:
        event = VENDOR_STEPS[Status(status)]
    except (ValueError, KeyError):
        raise ValidationError(
            errors={"status": [f"Must be one of: {', '.join(VENDOR_STEPS)}."]}
        ) from None
    with transaction.atomic():
        pickup = _locked_for_vendor(pickup_id, by)
        _change(pickup, event, actor=by)
        if actual_weights:
            if event != Event.PICK_UP:
                raise ValidationError(
                    errors={"items": ["Actual weights are recorded when picking up."]}
                )
            _record_actual_weights(pickup, actual_weights)
        if pickup.status == Status.COMPLETED:
            vendor_release_capacity(vendor_id=pickup.vendor_id)
        _announce(
            pickup,
            f"pickup.{pickup.status}",
            {
                Status.EN_ROUTE: f"{pickup.vendor.name} is on the way to pickup #{pickup.pk}.",
                Status.PICKED_UP: f"Pickup #{pickup.pk} was collected by {pickup.vendor.name}.",
                Status.COMPLETED: f"Pickup #{pickup.pk} is complete.",
            }[pickup.status],
        )
        return pickup


def _record_actual_weights(pickup: PickupRequest, weights: dict[str, Decimal]) -> None:
    items = {item.material_id: item for item in pickup.items.all()}
    unknown = sorted(set(weights) - set(items))
    if unknown:
        raise ValidationError(errors={"items": [f"Not in this pickup: {', '.join(unknown)}."]})
    for code, kg in weights.items():
        items[code].actual_kg = kg
    PickupItem.objects.bulk_update([items[c] for c in weights], ["actual_kg"])


# --- rejecting and cancelling ---------------------------------------------------------------


def pickup_reject(*, pickup_id: int, by: AbstractBaseUser, reason: str = "") -> PickupRequest:
    """A vendor member declines an offer, or the customer refuses the vendor that accepted.

    Either way the vendor is recorded as having said no (never offered this pickup again), its
    capacity is released, and the pickup goes back to pending for re-assignment.
    """
    with transaction.atomic():
        pickup = _locked_visible(pickup_id, by)
        if pickup.customer_id == by.pk and pickup.status != Status.OFFERED:
            event, role = Event.CUSTOMER_REJECT, PickupRejection.Role.CUSTOMER
        elif _is_member(by, pickup):
            event, role = Event.VENDOR_REJECT, PickupRejection.Role.VENDOR
        elif pickup.customer_id == by.pk:
            raise InvalidTransition("Only the accepted vendor can be rejected by the customer.")
        else:
            raise Forbidden("Only the customer or the vendor's members can reject.")
        vendor = pickup.vendor
        _change(pickup, event, actor=by, vendor=None)
        PickupRejection.objects.create(
            pickup=pickup, vendor=vendor, rejected_by=by, role=role, reason=reason
        )
        vendor_release_capacity(vendor_id=vendor.id)
        who = vendor.name if role == PickupRejection.Role.VENDOR else "The customer"
        what = "declined" if role == PickupRejection.Role.VENDOR else f"released {vendor.name} from"
        _announce(
            pickup,
            "pickup.rejected",
            f"{who} {what} pickup #{pickup.pk}.",
            vendor_id=vendor.id,
            extra={"rejected_by": role, "reason": reason, "vendor_id": vendor.id},
        )
        _enqueue_assignment(pickup)
        return pickup


def pickup_cancel(*, pickup_id: int, by: AbstractBaseUser, reason: str = "") -> PickupRequest:
    with transaction.atomic():
        pickup = _locked_visible(pickup_id, by)
        if pickup.customer_id != by.pk:
            raise Forbidden("Only the customer can cancel a pickup.")
        vendor_id = pickup.vendor_id
        held = Status(pickup.status) in CAPACITY_HELD
        _change(pickup, Event.CANCEL, actor=by, vendor=None)
        if held:
            vendor_release_capacity(vendor_id=vendor_id)
        _announce(
            pickup,
            "pickup.cancelled",
            f"Pickup #{pickup.pk} was cancelled.",
            vendor_id=vendor_id,
            extra={"reason": reason},
        )
        return pickup


# --- the customer's edits -------------------------------------------------------------------

DETAIL_FIELDS = frozenset({"address", "notes", "contact_phone", "window_start", "window_end"})
LOCATION_FIELDS = frozenset({"latitude", "longitude", "items"})


def pickup_update_details(
    *, pickup_id: int, by: AbstractBaseUser, changes: dict[str, Any]
) -> PickupRequest:
    """The customer edits the request before pickup.

    Address, notes, contact phone and window may change until the vendor sets off (en route).
    The location and the items decide which vendor is eligible, so they may change only while no
    vendor holds the pickup; changing them on an unassigned pickup retries the assignment, since
    another vendor may now be eligible.
    """
    unknown = set(changes) - DETAIL_FIELDS - LOCATION_FIELDS
    if unknown:
        raise ValidationError(
            errors={f: ["This field cannot be changed."] for f in sorted(unknown)}
        )
    if not changes:
        raise ValidationError(errors={"data": ["Nothing to change."]})
    with transaction.atomic():
        pickup = _locked_visible(pickup_id, by)
        if pickup.customer_id != by.pk:
            raise Forbidden("Only the customer can edit a pickup's details.")
        if Status(pickup.status) not in EDITABLE:
            raise InvalidTransition(f"A pickup that is {pickup.status} can no longer be edited.")
        if set(changes) & LOCATION_FIELDS and Status(pickup.status) not in RELOCATABLE:
            raise InvalidTransition(
                "Location and items can change only while no vendor holds the pickup."
            )
        for field in set(changes) - {"items"}:
            setattr(pickup, field, changes[field])
        if {"window_start", "window_end"} & set(changes):
            _validate_window(pickup.window_start, pickup.window_end)
        if "items" in changes:
            _validate_items(changes["items"])
            pickup.items.all().delete()
            _store_items(pickup, changes["items"])
        pickup.version += 1
        pickup.save()
        _announce(
            pickup,
            "pickup.updated",
            f"Pickup #{pickup.pk} was updated.",
            extra={"fields": sorted(changes)},
        )
        if set(changes) & LOCATION_FIELDS and pickup.status == Status.UNASSIGNED:
            _change(pickup, Event.RETRY, actor=by)
            _enqueue_assignment(pickup)
        return pickup


# --- shared steps ---------------------------------------------------------------------------

_UNCHANGED: Any = object()


def _locked_visible(pickup_id: int, user: AbstractBaseUser) -> PickupRequest:
    """The pickup, locked for this transaction, if the user may see it; else NotFound.

    The customer, the members of the vendor that holds it and operators (staff) see it.
    """
    pickup = (
        PickupRequest.objects.select_for_update(of=("self",))
        .select_related("vendor")
        .filter(pk=pickup_id)
        .first()
    )
    if pickup is None or not (
        pickup.customer_id == user.pk or user.is_staff or _is_member(user, pickup)
    ):
        raise NotFound(f"Pickup {pickup_id} not found.")
    return pickup


def _is_member(user: AbstractBaseUser, pickup: PickupRequest) -> bool:
    return pickup.vendor_id is not None and pickup.vendor_id in vendor_ids_of_member(
        user_id=user.pk
    )


def _locked_for_vendor(pickup_id: int, user: AbstractBaseUser) -> PickupRequest:
    pickup = _locked_visible(pickup_id, user)
    if not _is_member(user, pickup):
        raise Forbidden("Only a member of the pickup's vendor can do that.")
    return pickup


def _change(
    pickup: PickupRequest,
    event: Event,
    *,
    actor: AbstractBaseUser | None,
    vendor: Vendor | None = _UNCHANGED,
) -> None:
    """Apply one transition from the table, stamp it, and log it. Raises InvalidTransition."""
    target = next_status(pickup.status, event)
    logged_vendor = pickup.vendor if vendor is _UNCHANGED or vendor is None else vendor
    if vendor is not _UNCHANGED:
        pickup.vendor = vendor
    from_status = pickup.status
    pickup.status = target
    pickup.status_changed_at = timezone.now()
    pickup.version += 1
    pickup.save(update_fields=["status", "vendor", "status_changed_at", "version", "updated_at"])
    PickupTransition.objects.create(
        pickup=pickup,
        event=event,
        from_status=from_status,
        to_status=target,
        actor=actor,
        vendor=logged_vendor,
    )


def _announce(
    pickup: PickupRequest,
    kind: str,
    message: str,
    *,
    vendor_id: int | None = _UNCHANGED,
    customer_message: str | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Tell the customer and every member of the vendor concerned.

    The notifications are stored in the current transaction and pushed after it commits.
    ``vendor_id`` defaults to the vendor that holds the pickup now; pass the released vendor
    for changes that end its hold, or None to tell the customer only.
    """
    if vendor_id is _UNCHANGED:
        vendor_id = pickup.vendor_id
    messages = (
        {member: message for member in vendor_member_ids(vendor_id=vendor_id)} if vendor_id else {}
    )
    messages[pickup.customer_id] = customer_message or message
    notify(
        messages=messages,
        kind=kind,
        # ``version`` grows with every change of the pickup: clients can tell which state is
        # newest without relying on arrival order across several sockets.
        data={
            "pickup_id": pickup.pk,
            "status": pickup.status,
            "version": pickup.version,
            **(extra or {}),
        },
        event_key=f"pickup:{pickup.pk}:v{pickup.version}",
    )


def _items_text(pickup: PickupRequest) -> str:
    return ", ".join(f"{item.estimated_kg} kg {item.material_id}" for item in pickup.items.all())
