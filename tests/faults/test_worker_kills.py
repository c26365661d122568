"""SIGKILL the assignments worker, the main process and its pool processes, during a burst.

Acks are late and a message whose pool process dies is rejected back to the queue, so a kill
loses no assignment; the assignment is idempotent, so a message delivered again (its worker
died before the ack reached RabbitMQ) offers nothing twice; and the stall sweep republishes
whatever stayed pending anyway. What the customer and the vendors see must be as if nothing
had happened: every pickup offered once or found no vendor once, capacity counted exactly.
"""

import os
import signal
import time

import pytest

from tests.e2e.stack import wait_until
from tests.faults.conftest import (
    Burst,
    assignment_check,
    last_notification_id,
    record,
    requeued_by_sweep,
    task_log_counts,
    wait_settled,
)

pytestmark = pytest.mark.e2e

# The burst goes on until the last kill is done and at least MIN_PICKUPS were sent, more than
# the region's vendors can take (60), so that capacity runs out during the burst.
MIN_PICKUPS = 75
MAX_PICKUPS = 200
# Main process (restarted at once) or one pool process (the pool replaces it).
KILLS = ("main", "pool", "main", "pool", "main")
PAUSE = 1.0  # seconds between a worker back at work and the next kill
SETTLE_TIMEOUT = 60


def test_sigkill_of_the_assignments_worker_loses_and_duplicates_nothing(world):
    stack = world.stack
    since = last_notification_id(world, world.alice)
    log_start = len(stack.log("assignments"))
    started = time.monotonic()
    burst = Burst(world, "kill", MAX_PICKUPS, threads=3, interval=0.6).start()
    kills, restarts = [], []
    for what in KILLS:
        time.sleep(PAUSE)
        if what == "main":
            began = time.monotonic()
            stack.restart("assignments")
            restarts.append(round(time.monotonic() - began, 2))
        else:
            pool = stack.children("assignments")
            assert pool, "the worker has no pool processes"
            os.kill(pool[0], signal.SIGKILL)
            # The pool notices the loss and forks a replacement before the next kill.
            wait_until(
                lambda pool=pool: len(set(stack.children("assignments")) - set(pool)) >= 1,
                timeout=20,
                what="the pool to replace the killed process",
            )
        kills.append(what)
    time.sleep(PAUSE)
    wait_until(lambda: burst.sent >= MIN_PICKUPS, timeout=60, what=f"{MIN_PICKUPS} creates")
    burst.finish()
    results = burst.join()
    burst_seconds = time.monotonic() - started
    acknowledged = burst.created_ids()

    states, settle_seconds = wait_settled(world, acknowledged, timeout=SETTLE_TIMEOUT)
    check = assignment_check(world, "kill", states, since)
    log = stack.log("assignments")[log_start:]
    tasks = task_log_counts(log, "pickups.tasks.assign_vendor_task")
    figures = {
        "pickups_sent": len(results),
        "acknowledged_201": len(acknowledged),
        "kills_main": kills.count("main"),
        "kills_pool": kills.count("pool"),
        "restart_seconds": restarts,
        "burst_seconds": round(burst_seconds, 1),
        "settled_after_burst_seconds": round(settle_seconds, 1),
        "assign_task_runs_logged": tasks["received"],
        "assign_tasks_distinct": tasks["distinct"],
        "redelivered_or_republished": tasks["received"] - tasks["distinct"],
        "worker_lost_errors": tasks["worker_lost"],
        "republished_by_stall_sweep": requeued_by_sweep(log),
        **{k: check[k] for k in ("lost", "duplicated", "invalid", "offered", "unassigned")},
        "open_jobs_match": check["open_jobs_match"],
    }
    record("sigkill_assignments_worker", figures)

    assert len(acknowledged) == len(results), [r for r in results if r[1] != 201][:3]
    assert check["lost"] == 0, check["lost_ids"]
    assert check["duplicated"] == 0, check["duplicated_ids"]
    assert check["invalid"] == 0, {i: states[i] for i in check["invalid_ids"][:3]}
    assert check["open_jobs_match"], (check["open_jobs"], check["held"])
    # More pickups than capacity: every unit is taken, none twice, the rest found no vendor.
    capacity = world.regions["kill"].capacity
    assert check["offered"] == capacity and check["unassigned"] == len(results) - capacity
