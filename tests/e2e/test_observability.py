"""Operations on the real stack: one pickup followed through the JSON logs of the web process and
both workers by its correlation id; ``/ready/`` with the stack's workers; ``/metrics``."""

import json
import urllib.request

import pytest

from tests.e2e.client import call, open_socket, pickup_data
from tests.e2e.stack import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio]


def json_lines(log: str) -> list[dict]:
    """The log's JSON lines (a worker also prints its start-up banner, which is not a log line)."""
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


def about(stack, process: str, pickup_id: int) -> list[dict]:
    return [line for line in json_lines(stack.log(process)) if line.get("pickup_id") == pickup_id]


def get(stack, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"{stack.http}{path}", timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


async def test_one_correlation_id_from_the_socket_through_the_assignment_to_the_notifications(
    stack, tokens
):
    socket = await open_socket(stack, tokens["alice"], "/ws/pickups/")
    created = await call(socket, "create", data=pickup_data())
    pickup_id = created["pickup"]["id"]

    def logged() -> bool:
        assigned = [line for line in about(stack, "assignments", pickup_id) if "event" in line]
        # pickup.created to alice, then pickup.offered to alice and the vendor's members
        sent = [line for line in about(stack, "notifications", pickup_id) if "pushed" in line]
        return bool(assigned) and len(sent) >= 3

    wait_until(logged, timeout=30, what=f"the workers to log pickup {pickup_id}")
    [create] = [line for line in about(stack, "web", pickup_id) if line.get("event") == "create"]
    correlation_id = create["correlation_id"]
    assert create["logger"] == "pickups.transitions" and create["level"] == "INFO"
    assert (create["from_status"], create["to_status"]) == ("", "pending")
    assert isinstance(create["user_id"], int)

    [assign] = [line for line in about(stack, "assignments", pickup_id) if "event" in line]
    assert (assign["event"], assign["to_status"]) == ("assign", "offered")
    assert assign["correlation_id"] == correlation_id
    assert assign["task_name"] == "pickups.tasks.assign_vendor_task"
    assert assign["task_id"] == created["pickup"]["assignment_task_id"]

    notifications = [line for line in about(stack, "notifications", pickup_id) if "pushed" in line]
    assert {line["notification_kind"] for line in notifications} == {
        "pickup.created",
        "pickup.offered",
    }
    for line in notifications:
        assert line["correlation_id"] == correlation_id
        assert line["task_name"] == "notifications.tasks.push_notifications_task"
        assert line["pushed"] is True

    # Everything any process logged about the pickup names the same correlation id.
    for process in ("web", "assignments", "notifications"):
        assert {line["correlation_id"] for line in about(stack, process, pickup_id)} == {
            correlation_id
        }
    await call(socket, "cancel", pickup_id=pickup_id)  # the vendor's capacity back
    await socket.close()


async def test_the_web_process_logs_json_lines_only(stack):
    lines = [line for line in stack.log("web").splitlines() if line.strip()]
    assert lines and all(json.loads(line)["level"] for line in lines)


async def test_ready_lists_the_stacks_workers_and_the_queue_without_one(stack):
    status, body = get(stack, "/ready/")
    report = json.loads(body)
    assert status == 200, report
    assert {name: check["status"] for name, check in report["checks"].items()} == {
        "database": "ok",
        "cache": "ok",
        "rabbitmq": "ok",
        "redis": "ok",
        "workers": "ok",
    }
    workers = report["checks"]["workers"]
    assert sorted(workers["workers"].values()) == [
        [f"{stack.prefix}assignments"],
        [f"{stack.prefix}notifications"],
    ]
    assert all(name.startswith(stack.prefix) for name in workers["workers"])
    # The shared stack runs no maintenance worker: listed, and not a reason to fail.
    assert workers["queues_without_worker"] == [f"{stack.prefix}maintenance"]
    queues = report["checks"]["rabbitmq"]["queues"]
    assert queues[f"{stack.prefix}assignments"]["consumers"] == 1


async def test_metrics_count_the_stacks_traffic(stack, tokens):
    socket = await open_socket(stack, tokens["alice"], "/ws/pickups/")
    await call(socket, "ping")
    status, body = get(stack, "/metrics")
    await socket.close()
    assert status == 200
    text = body.decode()
    assert (
        'procurement_websocket_messages_total{action="ping",endpoint="/ws/pickups/",outcome="ok"}'
        in text
    )
    assert 'procurement_websocket_connections{endpoint="/ws/pickups/"}' in text
    assert 'procurement_http_requests_total{method="GET",status="200",view="ready"}' in text
