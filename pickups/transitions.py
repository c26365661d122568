"""The pickup state machine: the one table that says which change is legal from which status.

Services look every change up here, the docs draw the diagram from it, and the tests walk it, so
a rule is written exactly once.
"""

from enum import StrEnum

from procurement_system.errors import InvalidTransition


class Status(StrEnum):
    PENDING = "pending"
    OFFERED = "offered"
    UNASSIGNED = "unassigned"
    ACCEPTED = "accepted"
    EN_ROUTE = "en_route"
    PICKED_UP = "picked_up"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Event(StrEnum):
    ASSIGN = "assign"  # the assignment task found a vendor and offered it the job
    NO_VENDOR = "no_vendor"  # the assignment task found no eligible vendor
    RETRY = "retry"  # an unassigned pickup goes back to be assigned again
    OFFER_TIMEOUT = "offer_timeout"  # the offered vendor did not answer in time; re-assign
    ACCEPT = "accept"  # the offered vendor takes the job
    VENDOR_REJECT = "vendor_reject"  # the offered vendor declines; re-assign without it
    CUSTOMER_REJECT = "customer_reject"  # the customer refuses the accepted vendor; re-assign
    START = "start"  # the vendor is on the way
    PICK_UP = "pick_up"  # the goods are collected (actual weights recorded)
    COMPLETE = "complete"  # the job is done
    CANCEL = "cancel"  # the customer withdraws the request
    EXPIRE = "expire"  # the requested window ended before the goods were picked up


TRANSITIONS: dict[tuple[Status, Event], Status] = {
    (Status.PENDING, Event.ASSIGN): Status.OFFERED,
    (Status.PENDING, Event.NO_VENDOR): Status.UNASSIGNED,
    (Status.UNASSIGNED, Event.RETRY): Status.PENDING,
    (Status.OFFERED, Event.ACCEPT): Status.ACCEPTED,
    (Status.OFFERED, Event.VENDOR_REJECT): Status.PENDING,
    (Status.OFFERED, Event.OFFER_TIMEOUT): Status.PENDING,
    (Status.ACCEPTED, Event.CUSTOMER_REJECT): Status.PENDING,
    (Status.ACCEPTED, Event.START): Status.EN_ROUTE,
    (Status.EN_ROUTE, Event.PICK_UP): Status.PICKED_UP,
    (Status.PICKED_UP, Event.COMPLETE): Status.COMPLETED,
    (Status.PENDING, Event.CANCEL): Status.CANCELLED,
    (Status.OFFERED, Event.CANCEL): Status.CANCELLED,
    (Status.UNASSIGNED, Event.CANCEL): Status.CANCELLED,
    (Status.ACCEPTED, Event.CANCEL): Status.CANCELLED,
    (Status.PENDING, Event.EXPIRE): Status.EXPIRED,
    (Status.OFFERED, Event.EXPIRE): Status.EXPIRED,
    (Status.UNASSIGNED, Event.EXPIRE): Status.EXPIRED,
    (Status.ACCEPTED, Event.EXPIRE): Status.EXPIRED,
}

# Statuses in which a vendor holds the pickup (and one unit of its capacity, except completed).
VENDOR_HELD = frozenset(
    {Status.OFFERED, Status.ACCEPTED, Status.EN_ROUTE, Status.PICKED_UP, Status.COMPLETED}
)
# Statuses that take one unit of the vendor's capacity.
CAPACITY_HELD = VENDOR_HELD - {Status.COMPLETED}
TERMINAL = frozenset({Status.COMPLETED, Status.CANCELLED, Status.EXPIRED})
# Statuses a pickup leaves for ``expired`` once its window has ended: the goods were not collected
# and no vendor is on its way. A vendor already en route may still finish the job.
EXPIRABLE = frozenset(status for (status, event) in TRANSITIONS if event == Event.EXPIRE)
# Until the vendor sets off the customer may still edit the request's details.
EDITABLE = frozenset({Status.PENDING, Status.OFFERED, Status.UNASSIGNED, Status.ACCEPTED})
# While no vendor holds the pickup, its location and items may change too.
RELOCATABLE = frozenset({Status.PENDING, Status.UNASSIGNED})

# The status a vendor member may set with ``update``, and the event that leads there.
VENDOR_STEPS: dict[Status, Event] = {
    Status.EN_ROUTE: Event.START,
    Status.PICKED_UP: Event.PICK_UP,
    Status.COMPLETED: Event.COMPLETE,
}


def next_status(current: str, event: Event) -> Status:
    try:
        return TRANSITIONS[(Status(current), event)]
    except KeyError:
        raise InvalidTransition(
            f"Cannot {event.value.replace('_', ' ')} a pickup that is {current}."
        ) from None
