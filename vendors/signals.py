"""Signals other apps listen to, so vendors need not import them."""

from django.dispatch import Signal

#: Sent (with ``vendor_id``) inside the transaction that let a vendor take more work: it came
#: online, or changed its capacity, service radius or price list. The pickups app answers by
#: offering it waiting (unassigned) pickups once the change commits.
vendor_can_take_more = Signal()
