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
from pickups import events, outbox, tasks
from pickups.models import PickupItem, PickupRejection, PickupRequest, PickupTransition
from pickups.transitions import (
    CAPACITY_HELD,
    EDITABLE,
    EXPIRABLE,
    RELOCATABLE,
    VENDOR_STEPS,
    Event,
    Status,
    next_status,
)
from procurement_system.errors import Forbidden, InvalidTransition, NotFound, ValidationError
from procurement_system.observability import bind_pickup
from vendors.models import Material, Vendor, VendorMaterial
from vendors.selectors import (
    Candidate,
    vendor_candidates,
    vendor_ids_of_member,
    vendor_member_ids,
)
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
                # The assignment's task id, chosen now, so that the pickup can name the task a
                # client may poll at ``/api/tasks/<id>/``.
                assignment_task_id=str(uuid.uuid4()),
            )
            bind_pickup(pickup)  # the logs and tasks from here on carry its correlation id
            _store_items(pickup, items)
            _log_transition(
                pickup,
                events.CREATE,
                from_status="",
                actor=customer,
                vendor=None,
                at=pickup.created_at,
            )
            _announce(
                pickup,
                "pickup.created",
                f"Pickup #{pickup.pk} was received; looking for a vendor.",
                vendor_id=None,
            )
            _queue_assignment(pickup)
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
    task, cancelled meanwhile) is left as it is, so a redelivered task never offers twice. A
    pickup whose window has ended is expired instead of offered.
    """
    with transaction.atomic():
        pickup = _locked(pickup_id)
        if pickup is None or pickup.status != Status.PENDING:
            return pickup
        if _window_over(pickup):
            _expire(pickup)
            return pickup
        candidate = _reserve_nearest(pickup)
        if candidate is not None:
            _offer(pickup, candidate)
            return pickup
        _change(pickup, Event.NO_VENDOR, actor=None)
        _announce(
            pickup,
            "pickup.unassigned",
            f"No vendor is available for pickup #{pickup.pk} right now; it will be offered as "
            "soon as one is.",
            vendor_id=None,
        )
        return pickup


def pickup_retry_assignment(*, pickup_id: int, due_only: bool = True) -> PickupRequest | None:
    """Try an unassigned pickup again: offer it if a vendor is eligible now, else schedule the
    next retry further out (exponential backoff). Nothing is logged or told while no vendor is
    found, so retries do not flood the history or the customer.

    ``due_only`` (the periodic sweep) leaves alone a pickup whose retry is not due, so two sweeps
    that both picked it cannot both count a retry. A vendor that became available (online, more
    capacity, a job finished) retries with ``due_only=False``. A pickup that is no longer
    unassigned is left as it is, so concurrent retries offer it at most once.
    """
    with transaction.atomic():
        pickup = _locked(pickup_id)
        if pickup is None or pickup.status != Status.UNASSIGNED:
            return pickup
        now = timezone.now()
        if due_only and pickup.next_retry_at is not None and pickup.next_retry_at > now:
            return pickup
        if _window_over(pickup):
            _expire(pickup)
            return pickup
        candidate = _reserve_nearest(pickup)
        if candidate is None:
            pickup.retry_count += 1
            pickup.next_retry_at = now + retry_delay(pickup.retry_count)
            pickup.save(update_fields=["retry_count", "next_retry_at"])
            return pickup
        _change(pickup, Event.RETRY, actor=None)
        _offer(pickup, candidate)
        return pickup


def retry_delay(retries: int) -> timedelta:
    """How long after ``retries`` fruitless retries the next one is due."""
    base, cap = settings.UNASSIGNED_RETRY_BASE_SECONDS, settings.UNASSIGNED_RETRY_MAX_SECONDS
    return timedelta(seconds=min(base * 2 ** min(retries, 30), cap))


def _reserve_nearest(pickup: PickupRequest) -> Candidate | None:
    """The nearest eligible vendor, with one unit of its capacity reserved for this pickup."""
    candidates = vendor_candidates(
        latitude=pickup.latitude,
        longitude=pickup.longitude,
        material_codes=list(pickup.items.values_list("material_id", flat=True)),
        exclude_vendor_ids=set(pickup.rejections.values_list("vendor_id", flat=True)),
    )
    for candidate in candidates:
        # The candidate query saw free capacity, but a concurrent assignment may have taken it
        # since; the conditional reserve is the decision.
        if vendor_reserve_capacity(vendor_id=candidate.vendor.id):
            return candidate
    return None


def _offer(pickup: PickupRequest, candidate: Candidate) -> None:
    """Offer the pickup to the vendor whose capacity was reserved, quoting its prices and
    starting the offer's timer."""
    vendor = candidate.vendor
    # The prices first: the transition's domain event carries them.
    prices = dict(
        VendorMaterial.objects.filter(vendor=vendor).values_list("material_id", "price_per_kg")
    )
    items = list(pickup.items.all())
    for item in items:
        item.price_per_kg = prices.get(item.material_id)
    PickupItem.objects.bulk_update(items, ["price_per_kg"])
    _change(pickup, Event.ASSIGN, actor=None, vendor=vendor)
    _announce(
        pickup,
        "pickup.offered",
        f"New offer: pickup #{pickup.pk}, {_items_text(pickup)}, "
        f"{candidate.distance_km:.1f} km away. Answer within "
        f"{settings.OFFER_TIMEOUT_SECONDS} s.",
        customer_message=f"Pickup #{pickup.pk} was offered to {vendor.name}.",
        extra={
            "distance_km": round(candidate.distance_km, 2),
            "offer_expires_at": _timestamp(pickup.offer_expires_at),
        },
    )


def pickup_expire_offer(*, pickup_id: int, version: int) -> bool:
    """Withdraw an offer nobody answered in time, and re-assign the pickup without that vendor;
    return whether it was withdrawn.

    ``version`` names the offer: the pickup's version when the sweep saw it offered and due. If
    anything changed since (the vendor accepted or rejected, the customer cancelled, a newer
    offer was made), the version differs and nothing happens, so a late or repeated timer can
    never withdraw an offer it was not meant for.
    """
    with transaction.atomic():
        pickup = _locked(pickup_id)
        if (
            pickup is None
            or pickup.status != Status.OFFERED
            or pickup.version != version
            or pickup.offer_expires_at is None
            or pickup.offer_expires_at > timezone.now()
        ):
            return False
        vendor = pickup.vendor
        _change(pickup, Event.OFFER_TIMEOUT, actor=None, vendor=None)
        PickupRejection.objects.create(
            pickup=pickup,
            vendor=vendor,
            role=PickupRejection.Role.TIMEOUT,
            reason=f"No answer within {settings.OFFER_TIMEOUT_SECONDS} s.",
        )
        _release(vendor.id)
        _announce(
            pickup,
            "offer.expired",
            f"The offer of pickup #{pickup.pk} expired unanswered and went to another vendor.",
            vendor_id=vendor.id,
            customer_message=f"{vendor.name} did not answer in time; pickup #{pickup.pk} is "
            "being offered to another vendor.",
            extra={"vendor_id": vendor.id},
        )
        _enqueue_assignment(pickup)
        return True


def pickup_expire(*, pickup_id: int) -> PickupRequest | None:
    """Expire a pickup whose window ended before a vendor set off to collect it."""
    with transaction.atomic():
        pickup = _locked(pickup_id)
        if pickup is None or Status(pickup.status) not in EXPIRABLE or not _window_over(pickup):
            return pickup
        _expire(pickup)
        return pickup


def _expire(pickup: PickupRequest) -> None:
    vendor_id = _end(pickup, Event.EXPIRE, actor=None)
    _announce(
        pickup,
        "pickup.expired",
        f"Pickup #{pickup.pk} expired: its window ended before it was collected.",
        vendor_id=vendor_id,
    )


def _end(pickup: PickupRequest, event: Event, *, actor: AbstractBaseUser | None) -> int | None:
    """Move the pickup to a terminal status that lets its vendor go (cancel, expire), giving back
    the capacity unit it held; return that vendor's id, to tell its members."""
    vendor_id = pickup.vendor_id
    held = Status(pickup.status) in CAPACITY_HELD
    _change(pickup, event, actor=actor, vendor=None)
    if held:
        _release(vendor_id)
    return vendor_id


def _window_over(pickup: PickupRequest) -> bool:
    return pickup.window_end <= timezone.now()


def _release(vendor_id: int) -> None:
    """Give back a unit of the vendor's capacity and, once committed, offer it the unassigned
    pickups it could now take."""
    vendor_release_capacity(vendor_id=vendor_id)
    tasks.retry_unassigned_for_vendor_task.delay_on_commit(vendor_id)


def _enqueue_assignment(pickup: PickupRequest) -> None:
    """Queue the assignment after commit under an id chosen now, so the pickup can name the
    task (``assignment_task_id``) that a client may poll at ``/api/tasks/<id>/``."""
    pickup.assignment_task_id = str(uuid.uuid4())
    pickup.save(update_fields=["assignment_task_id"])
    _queue_assignment(pickup)


def _queue_assignment(pickup: PickupRequest) -> None:
    """Queue the assignment after commit, as the task its ``assignment_task_id`` names."""
    tasks.assign_vendor_task.apply_async_on_commit((pickup.pk,), task_id=pickup.assignment_task_id)


# --- the vendor's side ----------------------------------------------------------------------


def pickup_accept(*, pickup_id: int, by: AbstractBaseUser) -> PickupRequest:
    """A member of the offered vendor takes the job, if its offer has not run out: a late accept
    is refused even before the sweep has withdrawn the offer."""
    with transaction.atomic():
        pickup = _locked_for_vendor(pickup_id, by)
        deadline = pickup.offer_expires_at
        if pickup.status == Status.OFFERED and deadline and deadline <= timezone.now():
            raise InvalidTransition("The offer expired; it is going to another vendor.")
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
        target = next_status(pickup.status, event)
        if actual_weights and event != Event.PICK_UP:
            raise ValidationError(
                errors={"items": ["Actual weights are recorded when picking up."]}
            )
        if target == Status.PICKED_UP:
            # Weighed before the change: the transition's domain event carries the weights.
            _record_actual_weights(pickup, actual_weights or {})
        _change(pickup, event, actor=by)
        if pickup.status == Status.COMPLETED:
            _release(pickup.vendor_id)
            tasks.issue_receipt_task.delay_on_commit(pickup.pk)
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
    """The weighed kilograms of every item (0 for a material that was not there after all);
    the receipt is made from them."""
    items = {item.material_id: item for item in pickup.items.all()}
    unknown = sorted(set(weights) - set(items))
    if unknown:
        raise ValidationError(errors={"items": [f"Not in this pickup: {', '.join(unknown)}."]})
    missing = sorted(set(items) - set(weights))
    if missing:
        raise ValidationError(
            errors={"items": [f"Weigh every item when picking up; missing: {', '.join(missing)}."]}
        )
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
        _release(vendor.id)
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
        vendor_id = _end(pickup, Event.CANCEL, actor=by)
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


def _locked(pickup_id: int) -> PickupRequest | None:
    """The pickup (with its vendor), locked for this transaction, for the system's own work.
    Every service that changes a pickup loads it here: its correlation id enters the logs."""
    pickup = (
        PickupRequest.objects.select_for_update(of=("self",))
        .select_related("vendor")
        .filter(pk=pickup_id)
        .first()
    )
    bind_pickup(pickup)
    return pickup


def _locked_visible(pickup_id: int, user: AbstractBaseUser) -> PickupRequest:
    """The pickup, locked for this transaction, if the user may see it; else NotFound.

    The customer, the members of the vendor that holds it and operators (staff) see it.
    """
    pickup = _locked(pickup_id)
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
    now = timezone.now()
    pickup.status = target
    pickup.status_changed_at = now
    pickup.version += 1
    # The status's timer: an offer's deadline, or the first retry of an unassigned pickup.
    pickup.offer_expires_at = (
        now + timedelta(seconds=settings.OFFER_TIMEOUT_SECONDS)
        if target == Status.OFFERED
        else None
    )
    pickup.retry_count = 0
    pickup.next_retry_at = now + retry_delay(0) if target == Status.UNASSIGNED else None
    pickup.save(
        update_fields=[
            "status",
            "vendor",
            "status_changed_at",
            "version",
            "offer_expires_at",
            "retry_count",
            "next_retry_at",
            "updated_at",
        ]
    )
    _log_transition(
        pickup, event, from_status=from_status, actor=actor, vendor=logged_vendor, at=now
    )


def _log_transition(
    pickup: PickupRequest,
    event: str,
    *,
    from_status: str,
    actor: AbstractBaseUser | None,
    vendor: Vendor | None,
    at: datetime,
) -> None:
    """Record the transition the pickup has just made: in its history, and as a domain event
    for other systems, relayed to RabbitMQ once the transaction commits."""
    PickupTransition.objects.create(
        pickup=pickup,
        event=event,
        from_status=from_status,
        to_status=pickup.status,
        actor=actor,
        vendor=vendor,
    )
    events.event_record(
        pickup=pickup,
        event=event,
        from_status=from_status,
        to_status=pickup.status,
        actor=actor,
        vendor=vendor,
        occurred_at=at,
    )
    if settings.EVENTS_RELAY_ON_COMMIT:
        transaction.on_commit(_relay_events_soon, robust=True)


def _relay_events_soon() -> None:
    """After commit: queue a relay of the domain events, unless one is queued that has not
    started yet (it sends these too). A failure is logged (robust ``on_commit``) and the
    periodic relay sends the events."""
    if not outbox.wake_up_due():
        return
    try:
        tasks.relay_events_task.apply_async()
    except Exception:
        outbox.wake_up_received()
        raise


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


def _timestamp(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def _items_text(pickup: PickupRequest) -> str:
    return ", ".join(f"{item.estimated_kg} kg {item.material_id}" for item in pickup.items.all())


# --- operators ------------------------------------------------------------------------------


def pickup_rerun_assignment(*, pickup_id: int) -> PickupRequest:
    """An operator's "assign it now" for a pickup that waits for a vendor.

    A ``pending`` pickup has its assignment task published again after commit, under a new task
    id (a lost or stuck message is replaced; if the old one still arrives it finds the pickup
    no longer pending and does nothing). An ``unassigned`` pickup is retried at once, whatever
    its backoff: offered if a vendor is eligible now, else its next retry is scheduled as by the
    periodic sweep. Any other status raises InvalidTransition: a vendor holds the pickup, or it
    has ended.
    """
    with transaction.atomic():
        pickup = _locked(pickup_id)
        if pickup is None:
            raise NotFound(f"Pickup {pickup_id} not found.")
        if pickup.status == Status.PENDING:
            _enqueue_assignment(pickup)
            return pickup
        if pickup.status == Status.UNASSIGNED:
            # Under the lock taken above, so the pickup is still there and still unassigned.
            return pickup_retry_assignment(pickup_id=pickup_id, due_only=False) or pickup
        raise InvalidTransition(
            f"Pickup #{pickup_id} is {pickup.status}; only pending or unassigned pickups can be "
            "assigned again."
        )
