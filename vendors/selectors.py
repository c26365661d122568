from collections.abc import Collection
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, F, Q, QuerySet, prefetch_related_objects

from procurement_system.errors import NotFound
from vendors.geo import bounding_box, haversine_km
from vendors.models import Vendor

#: The most vendors ``vendors_nearby`` returns.
NEARBY_LIMIT = 50


@dataclass(frozen=True)
class Candidate:
    vendor: Vendor
    distance_km: float


def vendor_candidates(
    *,
    latitude: float,
    longitude: float,
    material_codes: Collection[str],
    exclude_vendor_ids: Collection[int] = (),
) -> list[Candidate]:
    """Vendors that may be offered a pickup at (latitude, longitude), nearest first.

    Eligible: active and online, with free capacity, collecting every requested material, whose
    service radius covers the point, and not excluded (every vendor that said no). The database
    narrows the field with each vendor's stored bounding box; only those rows get the exact
    haversine check.
    """
    codes = set(material_codes)
    rows = (
        Vendor.objects.filter(
            is_active=True,
            is_online=True,
            open_jobs__lt=F("capacity"),
            min_lat__lte=latitude,
            max_lat__gte=latitude,
            min_lon__lte=longitude,
            max_lon__gte=longitude,
        )
        .exclude(id__in=list(exclude_vendor_ids))
        .annotate(
            matched=Count("materials", filter=Q(materials__material_id__in=codes), distinct=True)
        )
        .filter(matched=len(codes))
    )
    candidates = []
    for vendor in rows:
        distance = haversine_km(latitude, longitude, vendor.latitude, vendor.longitude)
        if distance <= vendor.service_radius_km:
            candidates.append(Candidate(vendor, distance))
    candidates.sort(key=lambda c: (c.distance_km, c.vendor.id))
    return candidates


def vendor_ids_of_member(*, user_id: int) -> set[int]:
    return set(
        Vendor.members.through.objects.filter(user_id=user_id).values_list("vendor_id", flat=True)
    )


def vendor_member_ids(*, vendor_id: int) -> list[int]:
    return list(
        Vendor.members.through.objects.filter(vendor_id=vendor_id).values_list("user_id", flat=True)
    )


# --- the REST API's reads -------------------------------------------------------------------


def vendors_visible_to(*, user: AbstractBaseUser) -> QuerySet[Vendor]:
    """Active vendors for everyone; inactive ones too for an operator (staff). Prefetched for
    their public representation."""
    vendors = Vendor.objects.prefetch_related("materials__material")
    if user.is_staff:
        return vendors
    return vendors.filter(is_active=True)


def vendor_detail(*, vendor_id: int) -> Vendor:
    """A vendor with everything its full representation needs (members included), for a caller
    that already checked access."""
    return Vendor.objects.prefetch_related("materials__material", "members").get(pk=vendor_id)


def vendor_of_member(*, user: AbstractBaseUser, vendor_id: int | None = None) -> Vendor:
    """The vendor ``user`` acts for: ``vendor_id`` when given (and theirs), else the first of
    theirs by name. Another vendor, or none at all, is ``NotFound``."""
    vendors = Vendor.objects.filter(members=user).order_by("name", "id")
    if vendor_id is not None:
        vendors = vendors.filter(pk=vendor_id)
    vendor = vendors.first()
    if vendor is None:
        if vendor_id is not None:
            raise NotFound(f"Vendor {vendor_id} not found.")
        raise NotFound("You are not a member of any vendor.")
    return vendor_detail(vendor_id=vendor.pk)


@dataclass(frozen=True)
class NearbyVendor:
    vendor: Vendor
    distance_km: float

    @property
    def serves_location(self) -> bool:
        """Whether the vendor's own service area reaches the point searched from."""
        return self.distance_km <= self.vendor.service_radius_km


def vendors_nearby(
    *,
    latitude: float,
    longitude: float,
    radius_km: float,
    material: str | None = None,
    limit: int = NEARBY_LIMIT,
) -> list[NearbyVendor]:
    """Active, online vendors based within ``radius_km`` of (latitude, longitude), nearest first.

    Unlike ``vendor_candidates`` this looks at where vendors are, not at whom they serve: the
    circle is the caller's, around the point, and each result says whether the vendor's own
    service radius covers the point. The database narrows the field with the circle's bounding
    box on the vendors' coordinates; only those rows get the exact haversine check.
    """
    box = bounding_box(latitude, longitude, radius_km)
    rows = Vendor.objects.filter(
        is_active=True,
        is_online=True,
        latitude__gte=box.min_lat,
        latitude__lte=box.max_lat,
        longitude__gte=box.min_lon,
        longitude__lte=box.max_lon,
    )
    if material is not None:
        rows = rows.filter(materials__material_id=material)
    found = []
    for vendor in rows:
        distance = haversine_km(latitude, longitude, vendor.latitude, vendor.longitude)
        if distance <= radius_km:
            found.append(NearbyVendor(vendor, distance))
    found.sort(key=lambda n: (n.distance_km, n.vendor.id))
    found = found[:limit]
    # Only the vendors returned need their price lists: one more query, whatever the count.
    prefetch_related_objects([n.vendor for n in found], "materials__material")
    return found
