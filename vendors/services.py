from django.db.models import F

from vendors.models import Vendor


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
