"""Flower on the real stack, as operators use it: the workers the stack runs, the assignment task
of a pickup a customer created, and (with RabbitMQ's management API) the stack's queue lengths,
all behind basic auth. Flower's refusal of wrong credentials is in ``test_security.py``.
"""

import secrets
import socket

import pytest

from tests.conftest import require_service
from tests.e2e.client import http, pickup_data
from tests.e2e.stack import Flower, wait_until

pytestmark = pytest.mark.e2e

ASSIGN = "pickups.tasks.assign_vendor_task"


@pytest.fixture(scope="module")
def flower(stack):
    flower = Flower(stack, credentials=f"ops:{secrets.token_urlsafe(12)}")
    try:
        flower.start()
        yield flower
    finally:
        flower.stop()


def hostnames(stack) -> dict[str, str]:
    """The stack's workers as Flower names them (the Procfile's --hostname, %h expanded)."""
    return {
        queue: f"{stack.prefix}{queue}@{socket.gethostname()}"
        for queue in ("assignments", "notifications")
    }


def test_flower_answers_nothing_without_credentials(flower):
    for path in ("/api/workers", "/api/tasks", "/api/queues/length"):
        assert flower.status(path) == 401, path


def test_flower_lists_the_stacks_workers_and_the_queues_they_consume(stack, flower):
    expected = hostnames(stack)
    workers: dict = {}

    def both_listed() -> bool:
        workers.update(flower.get("/api/workers?refresh=1"))
        return set(expected.values()) <= set(workers)

    wait_until(both_listed, timeout=30, what="Flower to list the stack's workers", interval=0.5)
    for queue, hostname in expected.items():
        consumed = [q["name"] for q in workers[hostname]["active_queues"]]
        assert consumed == [f"{stack.prefix}{queue}"], hostname
        assert ASSIGN in workers[hostname]["registered"]


def test_flower_shows_the_assignment_task_of_a_new_pickup(stack, tokens, flower):
    assignments = hostnames(stack)["assignments"]
    # Flower sees tasks through the workers' events: wait until its event receiver hears the
    # stack's worker (heartbeats every 2 s), so that it cannot miss the task's events.
    wait_until(
        lambda: flower.get("/api/workers?status=1").get(assignments) is True,
        timeout=30,
        what="Flower to receive the assignments worker's events",
        interval=0.5,
    )
    status, created, _ = http(stack, "POST", "/api/pickups/", tokens["alice"], pickup_data())
    assert status == 201, created
    status, pickup, _ = http(stack, "GET", f"/api/pickups/{created['id']}/", tokens["alice"])
    assert status == 200
    task_id = pickup["assignment_task_id"]
    tasks: dict = {}

    def succeeded() -> bool:
        tasks.update(flower.get(f"/api/tasks?taskname={ASSIGN}"))
        return tasks.get(task_id, {}).get("state") == "SUCCESS"

    try:
        wait_until(succeeded, timeout=30, what=f"Flower to show task {task_id}", interval=0.5)
        task = tasks[task_id]
        assert (task["name"], task["worker"]) == (ASSIGN, assignments)
        assert task["args"] == f"({created['id']},)"
        assert task["result"] == "'offered'"
        assert flower.get(f"/api/task/info/{task_id}")["state"] == "SUCCESS"
    finally:
        http(stack, "POST", f"/api/pickups/{created['id']}/cancel/", tokens["alice"], {})


def test_flower_shows_the_stacks_queue_lengths(stack, flower):
    """Flower asks RabbitMQ's management API (--broker-api) for the queues its workers consume;
    CI enables the management plugin (.ci/run), a developer machine may not have it."""
    require_service("RabbitMQ management API", 15672)
    consumed = {f"{stack.prefix}assignments", f"{stack.prefix}notifications"}
    lengths: dict = {}

    def listed() -> bool:
        flower.get("/api/workers?refresh=1")  # the workers' queues are what Flower asks about
        lengths.clear()
        for queue in flower.get("/api/queues/length")["active_queues"]:
            # A queue's figures appear once RabbitMQ has collected its statistics.
            if "messages" in queue:
                lengths[queue["name"]] = queue["messages"]
        return consumed <= set(lengths)

    wait_until(listed, timeout=30, what="Flower to list the stack's queues", interval=0.5)
    assert all(isinstance(lengths[name], int) for name in consumed)
    assert "management API call failed" not in flower.log()
