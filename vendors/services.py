from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F

from procurement_system.errors import Forbidden, NotFound, ValidationError
from vendors.models import Material, Vendor, VendorMaterial
from vendors.signals import vendor_can_take_more

# Bounds of what a vendor may set; the REST serializers use the same numbers.
CAPACITY_MAX = 1000
RADIUS_MIN_KM = 0.1
RADIUS_MAX_KM = 500.0
MAX_MATERIALS = 50
MAX_PRICE_PER_KG = Decimal("99999999.99")  # what VendorMaterial.price_per_kg can hold
#: What a vendor member may change about their vendor (``vendor_update_settings``).
SETTINGS_FIELDS = frozenset({"is_online", "capacity", "service_radius_km", "materials"})


@dataclass(frozen=True)
class PriceInput:
    """One line of a vendor's price list: a material it collects and what it pays per kg."""

    material: str
    price_per_kg: Decimal


def vendor_reserve_capacity(*, vendor_id: int) -> bool:
    """Take one unit of the vendor's capacity if one is free; False if it is full.

    A single conditional UPDATE: the database re-checks ``open_jobs < capacity`` under the row's
    write lock, so two assignments racing for the last unit cannot both win. Call it inside the
    transaction that offers the pickup, so a rollback gives the unit back.
    """
    return bool(
        Vendor.objects.filter(pk=vendor_id, open_jobs__lt=F("capacity")).update(
            open_jobs=F("open_jobs") + 1
        )
    )


def vendor_release_capacity(*, vendor_id: int) -> None:
    """Give back one unit of capacity (an offer declined or withdrawn, a job ended)."""
    Vendor.objects.filter(pk=vendor_id, open_jobs__gt=0).update(open_jobs=F("open_jobs") - 1)


# --- settings, by the vendor's members -------------------------------------------------------


def vendor_update_settings(*, vendor_id: int, by: AbstractBaseUser, **changes: Any) -> Vendor:
    """Change a vendor's online flag, capacity, service radius and/or price list, for one of its
    members (or an operator). ``materials`` replaces the whole price list.

    Capacity may go below the jobs the vendor holds now: those stay, and the vendor gets no new
    offer until enough of them end (reservation checks ``open_jobs < capacity``). ``open_jobs``
    itself is never written here, so a concurrent reservation or release is not overwritten.
    """
    unknown = sorted(set(changes) - SETTINGS_FIELDS)
    if unknown:
        raise ValidationError(errors={key: ["Unknown field."] for key in unknown})
    _validate_settings(changes)
    with transaction.atomic():
        vendor = Vendor.objects.select_for_update().filter(pk=vendor_id).first()
        if vendor is None or not (by.is_staff or vendor.members.filter(pk=by.pk).exists()):
            raise NotFound(f"Vendor {vendor_id} not found.")
        materials = changes.pop("materials", None)
        if changes:
            for field, value in changes.items():
                setattr(vendor, field, value)
            vendor.save(update_fields=list(changes))
        if materials is not None:
            _replace_price_list(vendor, materials)
        if vendor.is_online and (changes or materials is not None):
            vendor_can_take_more.send(sender=Vendor, vendor_id=vendor.pk)
        return vendor


def _validate_settings(fields: dict[str, Any]) -> None:
    """The bounds of a vendor's settings, for any caller; the serializers check the same."""
    errors: dict[str, list[str]] = {}
    capacity = fields.get("capacity")
    if capacity is not None and not 0 <= capacity <= CAPACITY_MAX:
        errors["capacity"] = [f"Must be between 0 and {CAPACITY_MAX}."]
    radius = fields.get("service_radius_km")
    if radius is not None and not RADIUS_MIN_KM <= radius <= RADIUS_MAX_KM:
        errors["service_radius_km"] = [f"Must be between {RADIUS_MIN_KM} and {RADIUS_MAX_KM}."]
    if fields.get("materials") is not None:
        problem = _price_list_problem(fields["materials"])
        if problem:
            errors["materials"] = [problem]
    if errors:
        raise ValidationError(errors=errors)


def _price_list_problem(prices: Sequence[PriceInput]) -> str | None:
    codes = [p.material for p in prices]
    if len(codes) > MAX_MATERIALS:
        return f"At most {MAX_MATERIALS} materials."
    if len(codes) != len(set(codes)):
        return "Each material may appear only once."
    if any(not 0 <= p.price_per_kg <= MAX_PRICE_PER_KG for p in prices):
        return f"Prices must be between 0 and {MAX_PRICE_PER_KG}."
    known = set(Material.objects.filter(code__in=codes).values_list("code", flat=True))
    unknown = sorted(set(codes) - known)
    if unknown:
        return f"Unknown material: {', '.join(unknown)}."
    return None


def _replace_price_list(vendor: Vendor, prices: Sequence[PriceInput]) -> None:
    VendorMaterial.objects.filter(vendor=vendor).delete()
    VendorMaterial.objects.bulk_create(
        VendorMaterial(vendor=vendor, material_id=p.material, price_per_kg=p.price_per_kg)
        for p in prices
    )


# --- vendors and their members, by operators --------------------------------------------------


def vendor_create(
    *,
    by: AbstractBaseUser,
    name: str,
    latitude: float,
    longitude: float,
    service_radius_km: float,
    capacity: int = 5,
    is_active: bool = True,
    is_online: bool = True,
    materials: Sequence[PriceInput] = (),
) -> Vendor:
    """A new vendor, without members yet (``vendor_add_member`` adds them). Operators only."""
    _require_operator(by, "Only operators can create vendors.")
    errors: dict[str, list[str]] = {}
    if not name.strip():
        errors["name"] = ["A vendor needs a name."]
    if not -90 <= latitude <= 90:
        errors["latitude"] = ["Must be between -90 and 90."]
    if not -180 <= longitude <= 180:
        errors["longitude"] = ["Must be between -180 and 180."]
    if errors:
        raise ValidationError(errors=errors)
    _validate_settings(
        {"capacity": capacity, "service_radius_km": service_radius_km, "materials": materials}
    )
    with transaction.atomic():
        vendor = Vendor.objects.create(
            name=name,
            latitude=latitude,
            longitude=longitude,
            service_radius_km=service_radius_km,
            capacity=capacity,
            is_active=is_active,
            is_online=is_online,
        )
        _replace_price_list(vendor, materials)
        if is_active and is_online:
            vendor_can_take_more.send(sender=Vendor, vendor_id=vendor.pk)
        return vendor


def vendor_add_member(*, vendor_id: int, by: AbstractBaseUser, username: str) -> Vendor:
    """Let an existing user act for the vendor. Operators only; adding a member twice is fine."""
    _require_operator(by, "Only operators can add vendor members.")
    user_model = get_user_model()
    user = user_model.objects.filter(**{user_model.USERNAME_FIELD: username}).first()
    if user is None:
        raise ValidationError(errors={"username": [f"No user named {username!r}."]})
    with transaction.atomic():
        vendor = _vendor_locked(vendor_id)
        vendor.members.add(user)
        return vendor


def vendor_remove_member(*, vendor_id: int, by: AbstractBaseUser, user_id: int) -> None:
    """Stop a user acting for the vendor. Operators only; a user who is not a member is
    ``NotFound``."""
    _require_operator(by, "Only operators can remove vendor members.")
    with transaction.atomic():
        vendor = _vendor_locked(vendor_id)
        if not vendor.members.filter(pk=user_id).exists():
            raise NotFound(f"User {user_id} is not a member of vendor {vendor_id}.")
        vendor.members.remove(user_id)


def _require_operator(user: AbstractBaseUser, message: str) -> None:
    if not user.is_staff:
        raise Forbidden(message)


def _vendor_locked(vendor_id: int) -> Vendor:
    vendor = Vendor.objects.select_for_update().filter(pk=vendor_id).first()
    if vendor is None:
        raise NotFound(f"Vendor {vendor_id} not found.")
    return vendor
