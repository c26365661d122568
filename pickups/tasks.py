from celery import shared_task
from django.db import OperationalError

from pickups.services import pickup_assign_vendor


@shared_task(
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=30,
    max_retries=8,
    soft_time_limit=30,
    time_limit=60,
)
def assign_vendor_task(pickup_id: int) -> str | None:
    """Offer pending pickup ``pickup_id`` to the nearest eligible vendor, or mark it unassigned.

    Runs on the ``assignments`` queue, which has workers of its own, so an assignment never
    waits behind notification traffic. Idempotent: a
    redelivered message finds the pickup no longer pending and changes nothing. Retries with
    backoff when the database is briefly unavailable. Returns the pickup's status afterwards.
    """
    pickup = pickup_assign_vendor(pickup_id=pickup_id)
    return pickup.status if pickup is not None else None
