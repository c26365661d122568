"""Domain events: every pickup transition, told to other systems (ERP, accounting).

Each transition stores one ``DomainEvent`` in the transaction that makes it (the outbox), with
the message other systems will receive: a JSON document described by ``events_schema.json``
(``SCHEMA``). ``pickups.outbox`` publishes the stored events to RabbitMQ after commit. Consumers
bind a queue to the exchange ``EVENTS_EXCHANGE`` with routing keys ``pickup.<event>``.
"""

import json
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from pickups.models import DomainEvent, PickupRequest
from pickups.receipts import receipt_lines
from pickups.transitions import Event, Status
from vendors.models import Vendor
from vendors.selectors import vendor_ids_of_member

SCHEMA_PATH = Path(__file__).with_name("events_schema.json")
#: The JSON schema of every message body (JSON Schema draft 2020-12).
SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
#: The ``schema`` field of every message: which schema, and which version of it, applies.
SCHEMA_NAME = "procurement.pickup.event/1"
#: The event a pickup's history starts with; the others are the state machine's ``Event``.
CREATE = "create"
#: Every event, in the order of the lifecycle's table; each is published as ``pickup.<event>``.
EVENTS: tuple[str, ...] = (CREATE, *(e.value for e in Event))

_CENT = Decimal("0.01")


def routing_key(event: str) -> str:
    return f"pickup.{event}"


def event_record(
    *,
    pickup: PickupRequest,
    event: str,
    from_status: str,
    to_status: str,
    actor: AbstractBaseUser | None,
    vendor: Vendor | None,
    occurred_at: datetime,
) -> DomainEvent:
    """Store the event of a transition that the current transaction has just made.

    Call it after everything the transition changes is saved (the offer's prices, the weighed
    kilograms): the message is the pickup as the transition left it.
    """
    event_id = uuid.uuid4()
    payload = {
        "schema": SCHEMA_NAME,
        "id": str(event_id),
        "event": event,
        "occurred_at": _timestamp(occurred_at),
        "pickup_id": pickup.pk,
        "correlation_id": str(pickup.correlation_id),
        "version": pickup.version,
        "from_status": from_status or None,
        "to_status": to_status,
        "customer_id": pickup.customer_id,
        "vendor": {"id": vendor.pk, "name": vendor.name} if vendor is not None else None,
        "actor": {"id": actor.pk if actor else None, "role": _role(actor, pickup, vendor)},
        "items": _items(pickup),
    }
    if to_status == Status.COMPLETED:
        payload["total"] = _total(pickup)
        payload["currency"] = settings.PICKUP_CURRENCY
    return DomainEvent.objects.create(
        event_id=event_id,
        event=event,
        routing_key=routing_key(event),
        pickup_id=pickup.pk,
        payload=payload,
    )


def _role(actor: AbstractBaseUser | None, pickup: PickupRequest, vendor: Vendor | None) -> str:
    """Who made the change: the platform itself (a task, a sweep), the customer, a member of
    the vendor concerned, or an operator."""
    if actor is None:
        return "system"
    if actor.pk == pickup.customer_id:
        return "customer"
    if vendor is not None and vendor.pk in vendor_ids_of_member(user_id=actor.pk):
        return "vendor"
    return "operator"


def _items(pickup: PickupRequest) -> list[dict[str, Any]]:
    return [
        {
            "material": item.material_id,
            "estimated_kg": _decimal(item.estimated_kg),
            "actual_kg": _decimal(item.actual_kg),
            "price_per_kg": _decimal(item.price_per_kg),
        }
        for item in pickup.items.order_by("id")
    ]


def _total(pickup: PickupRequest) -> str:
    """The total the receipt, issued right after completion, will show."""
    return _decimal(sum((line.amount for line in receipt_lines(pickup)), Decimal("0")))


def _decimal(value: Decimal | None) -> str | None:
    """Amounts as strings with two decimals, as the REST API writes them: no float rounding."""
    return None if value is None else str(Decimal(value).quantize(_CENT))


def _timestamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
