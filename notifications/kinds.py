"""Every notification kind a user can receive, with what it means (the docs list these)."""

KINDS: dict[str, str] = {
    "pickup.created": "Customer: your pickup request was received and is being assigned.",
    "pickup.updated": "Customer and the vendor holding it: the request's details changed.",
    "pickup.offered": "Vendor members: a new offer to accept or reject. Customer: the request "
    "was offered to a vendor.",
    "pickup.unassigned": "Customer: no eligible vendor is free right now.",
    "pickup.accepted": "Customer and vendor members: the vendor accepted the job.",
    "pickup.rejected": "Customer and the vendor's members: the vendor declined the offer, or the "
    "customer refused the vendor (``data.rejected_by``); the request is being re-assigned.",
    "pickup.cancelled": "Customer and the vendor that held it: the customer cancelled.",
    "pickup.en_route": "Customer and vendor members: the vendor is on the way.",
    "pickup.picked_up": "Customer and vendor members: the goods were collected.",
    "pickup.completed": "Customer and vendor members: the job is complete.",
    "pickup.expired": "Customer, and the members of a vendor that held it: the requested window "
    "ended before the goods were collected.",
    "offer.expired": "Vendor members: the offer was not accepted in time and was withdrawn. "
    "Customer: the request is being offered to the next vendor.",
    "receipt.issued": "Customer and vendor members: the receipt of a completed pickup is ready.",
    "vendor.digest": "Vendor members, daily: the vendor's offers, accepted and completed jobs "
    "and earnings of the previous day.",
}
