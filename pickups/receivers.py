from pickups import tasks
from vendors.signals import vendor_can_take_more


def offer_unassigned_to_vendor(sender, *, vendor_id: int, **kwargs) -> None:
    tasks.retry_unassigned_for_vendor_task.delay_on_commit(vendor_id)


def connect() -> None:
    vendor_can_take_more.connect(
        offer_unassigned_to_vendor, dispatch_uid="pickups-offer-unassigned"
    )
