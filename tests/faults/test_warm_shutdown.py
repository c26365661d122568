"""SIGTERM the assignments and notifications workers while tasks are in flight.

SIGTERM is Celery's warm shutdown: the worker stops taking messages, lets the tasks its pool is
running finish, and gives back the messages it had reserved but not started (unacknowledged, so
RabbitMQ requeues them). After a restart every task has run with its effect exactly once: each
pickup offered once, each receipt issued once and announced once to each party.

To have tasks really in flight when the signal arrives, the test holds the database's write lock
while the workers start: the first task of each pool process blocks on its first write, the
signal is sent, and only then is the lock released.
"""

import signal
import threading
import time

import pytest

from tests.e2e.stack import wait_until
from tests.faults.conftest import (
    Burst,
    assignment_check,
    database_write_lock,
    fetch_pickups,
    last_notification_id,
    notifications,
    record,
    rest,
    wait_settled,
)

pytestmark = pytest.mark.e2e

PICKUPS = 30  # created while the assignments worker is stopped
COMPLETED = 4  # completed while the notifications worker is stopped: a receipt each
HELD_AFTER_SIGTERM = 1.5  # seconds the lock is still held after the signal
WORKERS = ("assignments", "notifications")
HEAD_TASK = {
    "assignments": "pickups.tasks.assign_vendor_task",
    "notifications": "pickups.tasks.issue_receipt_task",
}


def ok(stack, method, path, token, body=None):
    status, answer, _ = rest(stack, method, path, token, body)
    assert 200 <= status < 300, (method, path, status, answer)
    return answer


def start_workers(stack) -> None:
    """Start the stopped ones of the two workers, side by side."""
    stopped = [w for w in WORKERS if stack.processes[w].poll() is not None]
    threads = [threading.Thread(target=stack.start_process, args=(w,)) for w in stopped]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name in WORKERS:
        assert stack.processes[name].poll() is None, f"{name} did not start"


def task_lines(log: str, task: str, what: str) -> set[str]:
    """Ids of ``task`` that the log says were ``received`` or ``succeeded``."""
    marker = f"Task {task}["
    return {
        line.split(marker, 1)[1].split("]", 1)[0]
        for line in log.splitlines()
        if marker in line
        and (" received" in line if what == "received" else " succeeded in " in line)
    }


def test_sigterm_finishes_or_requeues_in_flight_tasks_and_duplicates_nothing(world):
    stack = world.stack
    region = world.regions["term"]
    vendor = region.vendors[0]
    since = {
        "alice": last_notification_id(world, world.alice),
        "vendor": last_notification_id(world, vendor.token),
    }

    # Jobs to complete later: offered to the nearest vendor, accepted, collected.
    prepared = Burst(world, "term", COMPLETED, threads=1, interval=0).start().join()
    jobs = [body["id"] for _, status, body, _, _ in prepared if status == 201]
    states, _ = wait_settled(world, jobs, timeout=30)
    assert {s["vendor"]["name"] for s in states.values()} == {vendor.name}
    for pickup_id in jobs:
        ok(stack, "POST", f"/api/pickups/{pickup_id}/accept/", vendor.token, {})
        ok(stack, "POST", f"/api/pickups/{pickup_id}/status/", vendor.token, {"status": "en_route"})
        ok(
            stack,
            "POST",
            f"/api/pickups/{pickup_id}/status/",
            vendor.token,
            {"status": "picked_up", "items": [{"material": "paper", "actual_kg": "21.5"}]},
        )

    # Work queued while the workers are stopped (an idle worker's warm shutdown is timed too):
    # the assignments of new pickups, then the receipts of the completed jobs, each at the head
    # of its queue.
    began = time.monotonic()
    stack.send_signal("assignments", signal.SIGTERM)
    stack.wait_exit("assignments", timeout=30)
    idle_shutdown = time.monotonic() - began
    burst = Burst(world, "term", PICKUPS, threads=2, interval=0).start()
    burst.join()
    created = burst.created_ids()
    wait_until(
        lambda: stack.queue_depth("notifications") == 0,
        timeout=30,
        what="the notifications of the creates to be pushed",
    )
    stack.send_signal("notifications", signal.SIGTERM)
    stack.wait_exit("notifications", timeout=30)
    for pickup_id in jobs:
        ok(
            stack,
            "POST",
            f"/api/pickups/{pickup_id}/status/",
            vendor.token,
            {"status": "completed"},
        )
    queued = stack.queue_depths()

    starts = {name: len(stack.log(name)) for name in WORKERS}
    try:
        with database_write_lock(stack):
            start_workers(stack)
            for name in WORKERS:
                wait_until(
                    lambda n=name: task_lines(stack.log(n)[starts[n] :], HEAD_TASK[n], "received"),
                    timeout=20,
                    what=f"the {name} worker to take its first task",
                )
            time.sleep(0.5)  # the pool processes start the tasks and block on the lock
            sent = time.monotonic()
            for name in WORKERS:
                stack.send_signal(name, signal.SIGTERM)
            time.sleep(HELD_AFTER_SIGTERM)
            waiting = {name: stack.processes[name].poll() is None for name in WORKERS}
        released = time.monotonic()
        exits = {name: stack.wait_exit(name, timeout=60) for name in WORKERS}
        exited = time.monotonic()
        requeued_depths = stack.queue_depths()
        # The runs that got the signal, before the restart appends to the logs.
        logs = {name: stack.log(name)[starts[name] :] for name in WORKERS}
    finally:
        start_workers(stack)
    states, settle_seconds = wait_settled(world, created, timeout=60)
    check = assignment_check(world, "term", states, since["alice"])

    def receipts_done() -> bool:
        return all(s["receipt"] for s in fetch_pickups(world, jobs).values())

    wait_until(receipts_done, timeout=60, interval=0.5, what="every receipt")
    finals = fetch_pickups(world, jobs)
    told = {
        who: [
            n["data"]["pickup_id"]
            for n in notifications(world, token, since[who])
            if n["kind"] == "receipt.issued"
        ]
        for who, token in (("alice", world.alice), ("vendor", vendor.token))
    }

    in_flight = {}
    for name in WORKERS:
        task = HEAD_TASK[name]
        run = logs[name]
        received = task_lines(run, task, "received")
        finished = task_lines(run, task, "succeeded") & received
        in_flight[name] = {
            "taken_before_exit": len(received),
            "finished_in_warm_shutdown": len(finished),
            "given_back": len(received - finished),
            # Any task: a periodic sweep queued just before may have taken the other process.
            "any_task_finished_in_warm_shutdown": run.count(" succeeded in "),
        }
    figures = {
        "pickups_created_while_stopped": len(created),
        "receipts_queued_while_stopped": len(jobs),
        "queued_at_restart": queued,
        "sigterms_idle": len(WORKERS),
        "sigterms_mid_task": len(WORKERS),
        "idle_warm_shutdown_seconds": round(idle_shutdown, 1),
        "alive_while_task_in_flight": waiting,
        "exit_codes": exits,
        "warm_shutdown_after_release_seconds": round(exited - released, 1),
        "sigterm_to_exit_seconds": round(exited - sent, 1),
        "requeued_ready_after_exit": requeued_depths,
        "in_flight": in_flight,
        "settled_after_restart_seconds": round(settle_seconds, 1),
        **{k: check[k] for k in ("lost", "duplicated", "invalid", "offered", "unassigned")},
        "open_jobs_match": check["open_jobs_match"],
        "receipts": sum(bool(s["receipt"]) for s in finals.values()),
        "receipt_numbers_distinct": len({s["receipt"]["number"] for s in finals.values()}),
        "receipt_issued_told_alice": len(told["alice"]),
        "receipt_issued_told_vendor": len(told["vendor"]),
    }
    record("sigterm_workers_mid_task", figures)

    assert len(created) == PICKUPS
    assert waiting == {name: True for name in WORKERS}, "a worker did not wait for its task"
    assert exits == {name: 0 for name in WORKERS}, exits
    for name in WORKERS:
        assert "Warm shutdown" in logs[name]
        assert in_flight[name]["any_task_finished_in_warm_shutdown"] >= 1, (name, in_flight)
    assert requeued_depths["assignments"] > 0, "nothing reserved was given back"
    assert check["lost"] == 0, check["lost_ids"]
    assert check["duplicated"] == 0, check["duplicated_ids"]
    assert check["invalid"] == 0, {i: states[i] for i in check["invalid_ids"][:3]}
    assert check["open_jobs_match"], (check["open_jobs"], check["held"])
    assert sorted(told["alice"]) == sorted(jobs) and sorted(told["vendor"]) == sorted(jobs), told
    assert figures["receipt_numbers_distinct"] == len(jobs)
