"""Fault injection on the real stack: processes killed, the broker and Redis restarted.

One stack for the whole suite (web, the three workers and beat, with the stall sweep every
second), so it starts once. Each scenario works in a region of its own: vendors seeded around
one city, far from the others, whose members' tokens the scenario uses, and pickups that alice
asks for there. A scenario's pickups can only go to its own vendors, so what one scenario leaves
behind never changes what the next one sees.

Every scenario records its figures with ``record``: they are printed at the end of the run and
written to ``faults-figures.json`` in the run's temporary directory, and
``docs/reliability.rst`` reports them.
"""

import fcntl
import json
import os
import platform
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pika
import pytest

from tests.conftest import require_service
from tests.e2e.client import pickup_data
from tests.e2e.stack import LIFECYCLE_PROCESSES, LIFECYCLE_SETUP, Stack, wait_until

# Short clocks where a scenario waits on them, long ones where a timer firing mid-scenario
# would only blur what it checks: the stall sweep runs every second and republishes the work of
# a pickup pending for 4 s; an offer stays open for 15 minutes, so every pickup a scenario
# offers is still offered, to the same vendor, when it is checked.
STALLED_AFTER = 4
FAULT_ENV = {
    "SCHEDULE_STALL_SWEEP_SECONDS": "1",
    "STALLED_AFTER_SECONDS": str(STALLED_AFTER),
    "OFFER_TIMEOUT_SECONDS": "900",
}

# Each scenario's region: a city, and its vendors (offset from the centre in degrees, capacity).
# The service radius is 15 km; the cities are hundreds of kilometres apart.
REGIONS = {
    "kill": ((53.5511, 9.9937), [(0.010, 0.010, 20), (-0.012, 0.015, 20), (0.02, -0.02, 20)]),
    "broker": ((48.1374, 11.5755), [(0.010, 0.010, 25), (-0.012, 0.015, 25), (0.02, -0.02, 25)]),
    "redis": ((50.9375, 6.9603), [(0.010, 0.010, 50), (-0.012, 0.015, 50)]),
    "term": ((50.1109, 8.6821), [(0.010, 0.010, 30), (-0.012, 0.015, 30)]),
}
SEED_REGIONS = """
import json
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from vendors.models import Vendor, VendorMaterial
out = {}
for region, ((lat, lon), vendors) in json.loads('REGIONS_JSON').items():
    out[region] = []
    for n, (dlat, dlon, capacity) in enumerate(vendors, 1):
        vendor, _ = Vendor.objects.update_or_create(
            name=f"Faults {region} {n}",
            defaults=dict(latitude=lat + dlat, longitude=lon + dlon, service_radius_km=15,
                          capacity=capacity, is_active=True, is_online=True),
        )
        VendorMaterial.objects.update_or_create(
            vendor=vendor, material_id="paper", defaults={"price_per_kg": "0.10"})
        member, _ = get_user_model().objects.get_or_create(username=f"faults-{region}-{n}")
        vendor.members.add(member)
        out[region].append(dict(id=vendor.id, name=vendor.name, member=member.username,
                                capacity=capacity,
                                token=Token.objects.get_or_create(user=member)[0].key))
print(json.dumps(out))
"""


@dataclass
class Vendor:
    id: int
    name: str
    member: str
    capacity: int
    token: str


@dataclass
class Region:
    location: tuple[float, float]
    vendors: list[Vendor]

    @property
    def capacity(self) -> int:
        return sum(v.capacity for v in self.vendors)


@dataclass
class World:
    stack: Stack
    alice: str
    regions: dict[str, Region] = field(default_factory=dict)


# --- the stack and its world ---------------------------------------------------------------


@pytest.fixture(scope="session")
def one_run_per_machine():
    """Each run restarts the machine's RabbitMQ and Redis: a second run waits for the first."""
    with open(os.path.join(tempfile.gettempdir(), "procurement-faults.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="session")
def fault_stack(tmp_path_factory, one_run_per_machine):
    require_service("RabbitMQ", 5672)
    require_service("Redis", 6379)
    stack = Stack(
        tmp_path_factory.mktemp("faults"),
        processes=LIFECYCLE_PROCESSES,
        env=FAULT_ENV,
        setup=LIFECYCLE_SETUP,
    )
    try:
        stack.start()
        yield stack
    finally:
        # A scenario that failed half-way may have left a service stopped: bring it back first,
        # since the stack needs the broker to delete its queues.
        ensure_rabbitmq()
        ensure_redis()
        stack.stop()


@pytest.fixture(scope="session")
def world(fault_stack) -> World:
    script = SEED_REGIONS.replace("REGIONS_JSON", json.dumps(REGIONS))
    seeded = json.loads(
        fault_stack.manage("shell", "-v", "0", "-c", script).strip().splitlines()[-1]
    )
    return World(
        stack=fault_stack,
        alice=fault_stack.token("alice"),
        regions={
            name: Region(location=REGIONS[name][0], vendors=[Vendor(**v) for v in vendors])
            for name, vendors in seeded.items()
        },
    )


# --- figures ---------------------------------------------------------------------------------

FIGURES: dict[str, dict] = {}


def record(scenario: str, figures: dict) -> None:
    """Keep a scenario's figures for the summary and the JSON file, and print them."""
    FIGURES[scenario] = figures
    print(f"{scenario}: {json.dumps(figures, sort_keys=True)}")


@pytest.fixture(scope="session", autouse=True)
def figures_file(tmp_path_factory):
    yield
    if FIGURES:
        path = tmp_path_factory.getbasetemp() / "faults-figures.json"
        run = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "database": "postgresql" if os.environ.get("E2E_DATABASE_URL") else "sqlite",
        }
        path.write_text(json.dumps({"run": run, "scenarios": FIGURES}, indent=2, sort_keys=True))
        FIGURES["_file"] = {"path": str(path)}


def pytest_terminal_summary(terminalreporter):
    if not FIGURES:
        return
    terminalreporter.section("fault injection figures")
    for scenario, figures in FIGURES.items():
        terminalreporter.write_line(f"{scenario}: {json.dumps(figures, sort_keys=True)}")


# --- REST ------------------------------------------------------------------------------------


def rest(stack, method: str, path: str, token: str, body=None, headers=None, timeout=20):
    """(status, parsed body, seconds); status 0 when no HTTP answer came at all."""
    request = urllib.request.Request(
        f"{stack.http}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Authorization": f"Token {token}",
            "Content-Type": "application/json",
            **(headers or {}),
        },
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    except (urllib.error.URLError, OSError) as error:
        return 0, repr(error), time.perf_counter() - started
    elapsed = time.perf_counter() - started
    try:
        return status, json.loads(raw or b"null"), elapsed
    except ValueError:
        return status, raw.decode(errors="replace"), elapsed


def read(stack, path: str, token: str, *, resend_for: float = 30):
    """GET ``path``, resent while the server fails to answer (no answer, or 5xx: a service it
    needs is restarting); the body of the 200."""
    deadline = time.monotonic() + resend_for
    while True:
        status, body, _ = rest(stack, "GET", path, token)
        if status == 200 or (0 < status < 500) or time.monotonic() > deadline:
            assert status == 200, (path, status, body)
            return body
        time.sleep(0.2)


def create_pickup(world: World, region: str, key: str):
    """Alice asks for a pickup of paper in the region: (status, body, seconds)."""
    return rest(
        world.stack,
        "POST",
        "/api/pickups/",
        world.alice,
        pickup_data(location=world.regions[region].location),
        headers={"Idempotency-Key": key},
    )


def fetch_pickups(world: World, ids, token: str | None = None) -> dict[int, dict | None]:
    """Each pickup as alice (or ``token``'s user) sees it over REST; None when it is not found."""

    def one(pickup_id: int):
        status, body, _ = rest(
            world.stack, "GET", f"/api/pickups/{pickup_id}/", token or world.alice
        )
        if status == 404:
            return pickup_id, None
        if status != 200:
            body = read(world.stack, f"/api/pickups/{pickup_id}/", token or world.alice)
        return pickup_id, body

    with ThreadPoolExecutor(4) as pool:
        return dict(pool.map(one, ids))


def wait_settled(world: World, ids, *, timeout: float) -> tuple[dict[int, dict | None], float]:
    """Poll until no pickup of ``ids`` is ``pending`` any more (or ``timeout``); the last states
    and how long it took."""
    started = time.monotonic()
    while True:
        states = fetch_pickups(world, ids)
        pending = [i for i, s in states.items() if s is not None and s["status"] == "pending"]
        if not pending or time.monotonic() - started > timeout:
            return states, time.monotonic() - started
        time.sleep(0.5)


def open_jobs(world: World, region: str) -> dict[str, int]:
    """Each of the region's vendors' ``open_jobs``, as its member reads it."""
    jobs = {}
    for vendor in world.regions[region].vendors:
        jobs[vendor.name] = read(world.stack, "/api/vendors/me/", vendor.token)["open_jobs"]
    return jobs


def notifications(world: World, token: str, after: int) -> list[dict]:
    """The user's stored notifications numbered above ``after``, oldest first (REST)."""
    found, path = [], f"/api/notifications/?after={after}&page_size=200"
    while path:
        body = read(world.stack, path, token)
        found += body["results"]
        path = body["next"] and urlsplit(body["next"])._replace(scheme="", netloc="").geturl()
    return found


def last_notification_id(world: World, token: str) -> int:
    body = read(world.stack, "/api/notifications/?page_size=1", token)
    return body["results"][0]["id"] if body["results"] else 0


def assignment_check(
    world: World, region: str, states: dict[int, dict | None], since: int
) -> dict[str, object]:
    """What every fault scenario on assignments checks, as figures:

    * ``lost``: pickups acknowledged (201) that are missing or still ``pending``;
    * ``duplicated``: pickups whose history holds more than one ``assign`` (offered twice), or
      for which alice was told ``pickup.offered``/``pickup.unassigned`` more than once;
    * ``invalid``: pickups in any other state than ``offered`` or ``unassigned``, or whose
      history is anything but ``create`` then ``assign``/``no_vendor``;
    * ``open_jobs``: each vendor's count against the pickups it holds.
    """
    lost = sorted(i for i, s in states.items() if s is None or s["status"] == "pending")
    duplicated, invalid = set(), set()
    held: dict[str, int] = {v.name: 0 for v in world.regions[region].vendors}
    for pickup_id, state in states.items():
        if state is None:
            continue
        events = [h["event"] for h in state["history"]]
        if events.count("assign") > 1:
            duplicated.add(pickup_id)
        expected = {"offered": ["create", "assign"], "unassigned": ["create", "no_vendor"]}
        if state["status"] not in expected or events != expected[state["status"]]:
            if state["status"] != "pending":
                invalid.add(pickup_id)
        if state["status"] == "offered":
            held[state["vendor"]["name"]] += 1
    told: dict[tuple[int, str], int] = {}
    for n in notifications(world, world.alice, since):
        pickup_id = n["data"].get("pickup_id")
        if pickup_id in states:
            told[pickup_id, n["kind"]] = told.get((pickup_id, n["kind"]), 0) + 1
    for (pickup_id, _kind), count in told.items():
        if count > 1:
            duplicated.add(pickup_id)
    for pickup_id, state in states.items():
        if state is None or state["status"] == "pending":
            continue
        kind = "pickup.offered" if state["status"] == "offered" else "pickup.unassigned"
        if told.get((pickup_id, kind)) != 1 or told.get((pickup_id, "pickup.created")) != 1:
            invalid.add(pickup_id)
    jobs = open_jobs(world, region)
    statuses = [s["status"] for s in states.values() if s is not None]
    return {
        "lost": len(lost),
        "lost_ids": lost,
        "duplicated": len(duplicated),
        "duplicated_ids": sorted(duplicated),
        "invalid": len(invalid),
        "invalid_ids": sorted(invalid),
        "offered": statuses.count("offered"),
        "unassigned": statuses.count("unassigned"),
        "open_jobs": jobs,
        "open_jobs_match": jobs == held,
        "held": held,
    }


def task_log_counts(log: str, task: str) -> dict[str, int]:
    """How often a worker's log says a task was received and succeeded (redeliveries included),
    for how many distinct task ids, and how many runs were lost with their pool process."""
    received = [line for line in log.splitlines() if f"Task {task}[" in line and "received" in line]
    ids = {line.split(f"Task {task}[", 1)[1].split("]", 1)[0] for line in received}
    return {
        "received": len(received),
        "distinct": len(ids),
        "succeeded": sum(
            f"Task {task}[" in line and " succeeded in " in line for line in log.splitlines()
        ),
        "worker_lost": log.count("Task handler raised error: WorkerLostError"),
    }


def requeued_by_sweep(log: str, since: int = 0) -> int:
    """Assignments ``requeue_stalled_task`` republished, from its results in the worker's log."""
    total = 0
    for line in log[since:].splitlines():
        if (
            "requeue_stalled_task[" in line
            and " succeeded in " in line
            and "'assignments': " in line
        ):
            total += int(line.split("'assignments': ", 1)[1].split(",", 1)[0].split("}", 1)[0])
    return total


# --- services --------------------------------------------------------------------------------


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def rabbitmq_answers() -> bool:
    try:
        pika.BlockingConnection(
            pika.ConnectionParameters("127.0.0.1", socket_timeout=2, blocked_connection_timeout=2)
        ).close()
        return True
    except Exception:
        return False


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


def stop_rabbitmq() -> None:
    """Stop the RabbitMQ application (the node stays up, so it comes back in seconds)."""
    rabbitmqctl("stop_app")


def start_rabbitmq() -> None:
    rabbitmqctl("start_app")
    wait_until(rabbitmq_answers, timeout=60, interval=0.2, what="RabbitMQ to accept connections")


def ensure_rabbitmq() -> None:
    """Bring RabbitMQ back whatever state a failed scenario left it in."""
    if rabbitmq_answers():
        return
    done = subprocess.run(["rabbitmqctl", "start_app"], capture_output=True, timeout=120)
    if done.returncode != 0:
        subprocess.run(["rabbitmq-server", "-detached"], capture_output=True, timeout=60)
    wait_until(rabbitmq_answers, timeout=90, interval=0.5, what="RabbitMQ to come back")


def redis_cli(*args: str) -> str:
    done = subprocess.run(["redis-cli", *args], capture_output=True, text=True, timeout=10)
    return done.stdout.strip()


def redis_answers() -> bool:
    return _listening(6379) and redis_cli("ping") == "PONG"


REDIS_ARGS = ["--bind", "127.0.0.1", "-::1", "--port", "6379", "--save", "", "--appendonly", "no"]
_redis_place: dict[str, str] = {}


def stop_redis() -> None:
    """Shut Redis down without saving: every key (channel-layer groups included) is gone."""
    for name in ("dir", "logfile"):
        _redis_place[name] = redis_cli("config", "get", name).splitlines()[-1]
    redis_cli("shutdown", "nosave")
    wait_until(lambda: not _listening(6379), timeout=20, what="Redis to stop")


def start_redis() -> None:
    """Start Redis as CI does, in the directory and with the log file it had."""
    args = ["redis-server", "--daemonize", "yes", *REDIS_ARGS]
    for name in ("dir", "logfile"):
        if _redis_place.get(name):
            args += [f"--{name}", _redis_place[name]]
    subprocess.run(args, check=True, capture_output=True, timeout=30)
    wait_until(redis_answers, timeout=30, interval=0.1, what="Redis to answer PING")


def ensure_redis() -> None:
    if not redis_answers():
        start_redis()


# --- a write lock on the database, to hold tasks mid-flight -----------------------------------


@contextmanager
def database_write_lock(stack: Stack):
    """While inside, every transaction that writes a pickup waits: on SQLite the test holds the
    database's write lock (``BEGIN IMMEDIATE``), on PostgreSQL an exclusive lock on the pickups
    table. A task that starts meanwhile is held in flight until the lock is released (well
    within SQLite's 20 s busy timeout)."""
    url = stack.env["DATABASE_URL"]
    if url.startswith("sqlite"):
        connection = sqlite3.connect(urlsplit(url).path, timeout=20, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            yield
        finally:
            connection.execute("ROLLBACK")
            connection.close()
    else:
        import psycopg

        with psycopg.connect(url) as connection:
            connection.execute("LOCK TABLE pickups_pickuprequest IN EXCLUSIVE MODE")
            try:
                yield
            finally:
                connection.rollback()


# --- pacing -----------------------------------------------------------------------------------


class Burst:
    """Send up to ``count`` creates from ``threads`` clients, each pausing ``interval`` seconds
    between two, in the background, until all are sent or ``finish`` is called; each result is
    (index, status, body, seconds, start time)."""

    def __init__(self, world: World, region: str, count: int, *, threads: int, interval: float):
        self.world, self.region = world, region
        self.count, self.threads, self.interval = count, threads, interval
        self.results: list[tuple[int, int, object, float, float]] = []
        self.tag = f"{region}-{time.time_ns()}"
        self._lock = threading.Lock()
        self._next = 0
        self._finished = threading.Event()
        self._pool = ThreadPoolExecutor(threads)
        self._futures = []

    def start(self) -> "Burst":
        self._futures = [self._pool.submit(self._client) for _ in range(self.threads)]
        return self

    @property
    def sent(self) -> int:
        with self._lock:
            return len(self.results)

    def _client(self) -> None:
        while not self._finished.is_set():
            with self._lock:
                index = self._next
                self._next += 1
            if index >= self.count:
                return
            started = time.monotonic()
            status, body, seconds = create_pickup(self.world, self.region, f"{self.tag}-{index}")
            with self._lock:
                self.results.append((index, status, body, seconds, started))
            self._finished.wait(self.interval)

    def finish(self) -> None:
        """Stop sending: each client stops after its current request."""
        self._finished.set()

    def join(self, timeout: float = 120) -> list[tuple[int, int, object, float, float]]:
        for future in self._futures:
            future.result(timeout=timeout)
        self._pool.shutdown()
        return sorted(self.results)

    def created_ids(self) -> list[int]:
        return [body["id"] for _, status, body, _, _ in self.results if status == 201]
