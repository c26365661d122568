import logging

from django.db import transaction
from django.db.models.signals import post_save

from pickups import tasks
from pickups.models import PickupTransition
from vendors.signals import vendor_can_take_more

# One INFO line per transition of a pickup, whichever service made it.
transitions_logger = logging.getLogger("pickups.transitions")


def offer_unassigned_to_vendor(sender, *, vendor_id: int, **kwargs) -> None:
    tasks.retry_unassigned_for_vendor_task.delay_on_commit(vendor_id)


def log_transition(sender, *, instance: PickupTransition, created: bool, **kwargs) -> None:
    """Log a transition once its transaction has committed: a change that was rolled back (a
    validation error after the status moved) is not in the logs either."""
    if not created:
        return
    pickup = instance.pickup
    fields = {
        "event": instance.event,
        "from_status": instance.from_status,
        "to_status": instance.to_status,
        "pickup_id": pickup.pk,
        "correlation_id": str(pickup.correlation_id),
    }
    transaction.on_commit(
        lambda: transitions_logger.info(
            "pickup %s %s: %s -> %s",
            pickup.pk,
            instance.event,
            instance.from_status or "(new)",
            instance.to_status,
            extra=fields,
        )
    )


def connect() -> None:
    vendor_can_take_more.connect(
        offer_unassigned_to_vendor, dispatch_uid="pickups-offer-unassigned"
    )
    post_save.connect(
        log_transition, sender=PickupTransition, dispatch_uid="pickups-log-transition"
    )
