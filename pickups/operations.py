"""What operators do to pickups from the command line, through the same services as the admin.

``rerun_assignments`` is the admin's "Re-run assignment" action for a list of ids: each pickup
goes through ``pickup_rerun_assignment`` on its own (one failing does not stop the others), and
each result is a value that says what happened or which domain error stopped it.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from pickups.models import PickupRequest
from pickups.services import pickup_rerun_assignment
from procurement_system.errors import DomainError


@dataclass(frozen=True)
class RerunResult:
    pickup_id: int
    outcome: str | None = None  # what re-running did, when it worked
    task_id: str | None = None  # the assignment task published, for a pending pickup
    error: DomainError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def rerun_assignments(pickup_ids: Iterable[int]) -> list[RerunResult]:
    results = []
    for pickup_id in pickup_ids:
        try:
            pickup = pickup_rerun_assignment(pickup_id=pickup_id)
        except DomainError as error:
            results.append(RerunResult(pickup_id, error=error))
            continue
        task_id = pickup.assignment_task_id if pickup.status == "pending" else None
        results.append(RerunResult(pickup_id, outcome=assignment_outcome(pickup), task_id=task_id))
    return results


def assignment_outcome(pickup: PickupRequest) -> str:
    """What re-running the assignment did to the pickup, as far as is known at once."""
    match pickup.status:
        case "pending":
            return "queued"
        case "offered":
            return f"offered to {pickup.vendor}"
        case "unassigned":
            return "still without a vendor"
    return pickup.status
