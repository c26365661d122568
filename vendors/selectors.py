from collections.abc import Collection
from dataclasses import dataclass

from django.db.models import Count, F, Q

from vendors.geo import haversine_km
from vendors.models import Vendor


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
