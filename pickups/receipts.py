"""Receipts: what a completed pickup collected and what it is worth."""

from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from notifications.dispatch import notify
from pickups.models import PickupRequest, Receipt, ReceiptLine
from pickups.selectors import pickup_get
from pickups.transitions import Status
from procurement_system.errors import NotFound
from vendors.models import VendorMaterial
from vendors.selectors import vendor_member_ids

CENT = Decimal("0.01")


def receipt_issue(*, pickup_id: int) -> tuple[Receipt | None, bool]:
    """Issue the receipt of a completed pickup and tell both parties; return it and whether it
    is new. A pickup that is not completed gets none (None); issuing twice returns the first.

    Each line is a material with its actual weight at its price (see ``receipt_lines``).
    """
    with transaction.atomic():
        pickup = (
            PickupRequest.objects.select_for_update(of=("self",))
            .select_related("vendor")
            .filter(pk=pickup_id)
            .first()
        )
        if pickup is None or pickup.status != Status.COMPLETED:
            return None, False
        existing = Receipt.objects.filter(pickup=pickup).first()
        if existing is not None:
            return existing, False
        vendor = pickup.vendor
        lines = receipt_lines(pickup)
        receipt = Receipt.objects.create(
            pickup=pickup,
            vendor=vendor,
            vendor_name=vendor.name,
            currency=settings.PICKUP_CURRENCY,
            total_kg=sum((line.actual_kg for line in lines), Decimal("0")),
            total=sum((line.amount for line in lines), Decimal("0")),
        )
        for line in lines:
            line.receipt = receipt
        ReceiptLine.objects.bulk_create(lines)
        text = (
            f"Receipt {receipt.number} for pickup #{pickup.pk}: {receipt.total} {receipt.currency}."
        )
        messages = {member: text for member in vendor_member_ids(vendor_id=vendor.id)}
        messages[pickup.customer_id] = text
        notify(
            messages=messages,
            kind="receipt.issued",
            data={
                "pickup_id": pickup.pk,
                "receipt": receipt.number,
                "total": str(receipt.total),
                "currency": receipt.currency,
            },
            event_key=f"pickup:{pickup.pk}:receipt",
        )
        return receipt, True


def receipt_lines(pickup: PickupRequest) -> list[ReceiptLine]:
    """The lines of the receipt of a pickup its vendor completed, unsaved: each material with its
    actual weight, at the price per kg the vendor quoted with its offer (its current price,
    should the quote be missing), rounded half up to the cent."""
    current_prices = dict(
        VendorMaterial.objects.filter(vendor_id=pickup.vendor_id).values_list(
            "material_id", "price_per_kg"
        )
    )
    lines = []
    for item in pickup.items.select_related("material"):
        price = item.price_per_kg
        if price is None:
            price = current_prices.get(item.material_id, Decimal("0"))
        actual = item.actual_kg if item.actual_kg is not None else Decimal("0")
        lines.append(
            ReceiptLine(
                material=item.material,
                material_name=item.material.name,
                estimated_kg=item.estimated_kg,
                actual_kg=actual,
                price_per_kg=price,
                amount=(actual * price).quantize(CENT, rounding=ROUND_HALF_UP),
            )
        )
    return lines


def receipt_get(*, user: AbstractBaseUser, pickup_id: int) -> Receipt:
    """The receipt of a pickup the user may see; NotFound until it is issued."""
    pickup = pickup_get(user=user, pickup_id=pickup_id)
    receipt = Receipt.objects.prefetch_related("lines").filter(pickup=pickup).first()
    if receipt is None:
        raise NotFound(f"Pickup {pickup_id} has no receipt (yet).")
    return receipt
