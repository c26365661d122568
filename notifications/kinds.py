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
}
