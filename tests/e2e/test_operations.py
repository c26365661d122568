"""The operators' commands against the running stack, run as an operator runs them: ``manage.py``
with the stack's environment (its database, its queue prefix), while the workers work."""

import json
import subprocess
import sys

import pytest

from tests.e2e.client import http
from tests.e2e.stack import REPO, wait_until

pytestmark = pytest.mark.e2e

# A pickup whose assignment message never reached the broker: created by the service as a
# request would be, with the publish after commit left out. It stays pending until someone acts.
CREATE_WITH_LOST_MESSAGE = """
from datetime import timedelta
from decimal import Decimal
from unittest import mock

from django.contrib.auth import get_user_model
from django.utils import timezone

from pickups import services, tasks

now = timezone.now()
with mock.patch.object(tasks.assign_vendor_task, "apply_async_on_commit"):
    pickup, _ = services.pickup_create(
        customer=get_user_model().objects.get(username="alice"),
        address="Alexanderplatz 1, 10178 Berlin",
        latitude=52.5219,
        longitude=13.4132,
        window_start=now + timedelta(hours=1),
        window_end=now + timedelta(hours=4),
        items=[services.ItemInput("paper", Decimal("40"))],
    )
print(pickup.pk, pickup.status, flush=True)
"""


def manage(stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def said(output: str) -> list[str]:
    """The command's own lines (one per pickup, the final error), without any log lines."""
    return [line for line in output.splitlines() if line.startswith(("#", "CommandError"))]


def test_queues_shows_the_stacks_queues_and_their_workers(stack):
    states = {s["role"]: s for s in json.loads(stack.manage("queues", "--json"))}
    assert {role: s["name"] for role, s in states.items()} == {
        role: f"{stack.prefix}{role}"
        for role in ("assignments", "notifications", "maintenance", "dead_letter")
    }
    assert all(s["exists"] for s in states.values())
    # The stack runs a worker for assignments and one for notifications, none for maintenance.
    assert states["assignments"]["consumers"] >= 1
    assert states["notifications"]["consumers"] >= 1
    assert (states["maintenance"]["consumers"], states["dead_letter"]["consumers"]) == (0, 0)


def test_rerun_assignment_replaces_a_lost_message_and_refuses_what_a_vendor_holds(stack, tokens):
    # The last line: the logs may go to standard output too.
    pickup_id, status = (
        stack.manage("shell", "-c", CREATE_WITH_LOST_MESSAGE).splitlines()[-1].split()
    )
    assert status == "pending"
    path = f"/api/pickups/{pickup_id}/"
    lost_task_id = http(stack, "GET", path, tokens["alice"])[1]["assignment_task_id"]

    done = manage(stack, "rerun_assignment", pickup_id)

    assert done.returncode == 0, done.stderr
    [line] = said(done.stdout)
    assert line.startswith(f"#{pickup_id} queued (assignment task ")
    task_id = line.removesuffix(")").rsplit(" ", 1)[1]
    assert task_id != lost_task_id
    seen: dict = {}

    def offered() -> bool:
        seen.update(http(stack, "GET", path, tokens["alice"])[1])
        return seen["status"] == "offered"

    try:
        wait_until(offered, timeout=30, what=f"pickup {pickup_id} to be offered")
        assert seen["assignment_task_id"] == task_id
        task = http(stack, "GET", f"/api/tasks/{task_id}/", tokens["alice"])[1]
        assert (task["state"], task["result"]) == ("SUCCESS", "offered")

        # Offered now: a vendor holds it, and the command says so with the error's code.
        refused = manage(stack, "rerun_assignment", pickup_id, "987654321")
        assert refused.returncode == 1
        assert said(refused.stdout) == []
        assert said(refused.stderr) == [
            f"#{pickup_id} invalid_transition: Pickup #{pickup_id} is offered; only pending or "
            "unassigned pickups can be assigned again.",
            "#987654321 not_found: Pickup 987654321 not found.",
            "CommandError: 2 of 2 pickups failed.",
        ]
    finally:
        http(stack, "POST", f"{path}cancel/", tokens["alice"], {})
