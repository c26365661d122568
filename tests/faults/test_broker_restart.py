"""Restart RabbitMQ during a burst of creates.

While the broker is away, the web process cannot publish the assignment of the pickup it just
stored. The publish after commit is robust: the request still answers ``201`` with the pickup,
bounded by the broker connection timeout, and the pickup stays ``pending`` in the database, the
outbox, until ``requeue_stalled_task`` publishes its assignment once the broker is back. Nothing
acknowledged may be lost and nothing offered twice.
"""

import time

import pytest

from tests.e2e.stack import wait_until
from tests.faults.conftest import (
    STALLED_AFTER,
    Burst,
    assignment_check,
    ensure_rabbitmq,
    last_notification_id,
    record,
    requeued_by_sweep,
    start_rabbitmq,
    stop_rabbitmq,
    task_log_counts,
    wait_settled,
)

pytestmark = pytest.mark.e2e

PICKUPS = 80
OUTAGE = 5.0  # seconds the broker stays stopped once it is down
# A create answers within the broker connection timeout (2 s) and one retry, plus the request's
# own time on a loaded machine.
LATENCY_BOUND = 8.0
SETTLE_TIMEOUT = 90
PUBLISH_FAILED = "Error calling publish of pickups.tasks.assign_vendor_task"


def test_creates_answer_while_rabbitmq_restarts_and_every_one_is_assigned(world):
    stack = world.stack
    since = last_notification_id(world, world.alice)
    starts = {name: len(stack.log(name)) for name in ("web", "assignments")}
    burst = Burst(world, "broker", PICKUPS, threads=3, interval=0.5).start()
    wait_until(lambda: burst.sent >= PICKUPS // 5, timeout=60, what="a fifth of the burst")
    try:
        stopping = time.monotonic()
        stop_rabbitmq()
        down = time.monotonic()
        time.sleep(OUTAGE)
        starting = time.monotonic()
        start_rabbitmq()
        back = time.monotonic()
    finally:
        ensure_rabbitmq()
    results = burst.join()
    acknowledged = burst.created_ids()
    states, settle_seconds = wait_settled(world, acknowledged, timeout=SETTLE_TIMEOUT)
    settled = time.monotonic()

    check = assignment_check(world, "broker", states, since)
    web_log = stack.log("web")[starts["web"] :]
    worker_log = stack.log("assignments")[starts["assignments"] :]
    tasks = task_log_counts(worker_log, "pickups.tasks.assign_vendor_task")
    # A create "during the outage" began after the broker started stopping and before it
    # accepted connections again.
    during = [r for r in results if stopping <= r[4] <= back]
    latencies = [r[3] for r in results]
    figures = {
        "pickups_sent": len(results),
        "acknowledged_201": len(acknowledged),
        "not_201": len(results) - len(acknowledged),
        "sent_while_broker_down": len(during),
        "broker_stop_seconds": round(down - stopping, 1),
        "broker_down_seconds": round(back - down, 1),
        "broker_start_seconds": round(back - starting, 1),
        "publishes_failed": web_log.count(PUBLISH_FAILED),
        "worst_create_seconds": round(max(latencies), 2),
        "worst_create_seconds_while_down": round(max((r[3] for r in during), default=0), 2),
        "republished_by_stall_sweep": requeued_by_sweep(worker_log),
        "assign_task_runs_logged": tasks["received"],
        "all_assigned_after_broker_back_seconds": round(settled - back, 1),
        "settle_wait_seconds": round(settle_seconds, 1),
        "stalled_after_seconds": STALLED_AFTER,
        **{k: check[k] for k in ("lost", "duplicated", "invalid", "offered", "unassigned")},
        "open_jobs_match": check["open_jobs_match"],
    }
    record("rabbitmq_restart", figures)

    assert len(acknowledged) == PICKUPS, [r[1:3] for r in results if r[1] != 201][:3]
    assert during, "no create was sent while the broker was down: proves nothing"
    assert figures["publishes_failed"] > 0, "no publish failed: the broker was never missed"
    assert max(latencies) < LATENCY_BOUND, sorted(latencies)[-5:]
    assert check["lost"] == 0, check["lost_ids"]
    assert check["duplicated"] == 0, check["duplicated_ids"]
    assert check["invalid"] == 0, {i: states[i] for i in check["invalid_ids"][:3]}
    assert check["open_jobs_match"], (check["open_jobs"], check["held"])
    capacity = world.regions["broker"].capacity
    assert check["offered"] == min(capacity, PICKUPS)
