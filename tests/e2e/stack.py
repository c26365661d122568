"""The real stack for end-to-end tests: the Procfile's processes, as ``make run`` starts them.

Each run gets its own SQLite file, queue names and channel-layer prefix, so it can share
RabbitMQ and Redis with a ``make run`` on the same machine without taking its messages. A stack
runs the processes it is given (by default web and the assignments and notifications workers)
with extra environment on top of the shared one, so a second stack can run, say, beat with
short schedules beside the first without either seeing the other's pickups.
"""

import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pika

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, *, timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds saying what we awaited."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def procfile_commands() -> dict[str, str]:
    lines = (REPO / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


# What ``make prepare`` runs before the processes start, collectstatic aside.
SETUP = (
    ("migrate", "--noinput"),
    ("createcachetable",),
    ("seed_demo",),
)
WORKERS = ("assignments", "notifications", "maintenance")

# The lifecycle stack: every process ``make run`` starts but Flower, beat included, with timers
# short enough that an offer times out and a window ends while a test waits.
LIFECYCLE_PROCESSES = ("web", *WORKERS, "beat")
LIFECYCLE_ENV = {
    "OFFER_TIMEOUT_SECONDS": "2",
    "SCHEDULE_OFFER_SWEEP_SECONDS": "1",
    "SCHEDULE_EXPIRY_SWEEP_SECONDS": "1",
    "SCHEDULE_RETRY_SWEEP_SECONDS": "1",
    "UNASSIGNED_RETRY_BASE_SECONDS": "1",
}
# The periodic tasks are written after ``migrate``, as ``make prepare`` does, from the schedules
# in the environment; ``--reset`` makes them the short ones even on a reused database.
LIFECYCLE_SETUP = (*SETUP[:2], ("setup_periodic_tasks", "--reset"), *SETUP[2:])


class Stack:
    PROCESSES = ("web", "assignments", "notifications")

    def __init__(
        self,
        workdir: Path,
        *,
        processes: tuple[str, ...] = PROCESSES,
        env: dict[str, str] | None = None,
        setup: tuple[tuple[str, ...], ...] = SETUP,
    ) -> None:
        """``processes`` are Procfile names, ``web`` first; ``env`` is added to every process's
        and every setup command's environment. When E2E_DATABASE_URL names a PostgreSQL server,
        the stack gets a database of its own there, created for the run and dropped by
        ``stop``; otherwise a fresh SQLite file."""
        if processes[0] != "web":
            raise ValueError("the web process comes first: the others are checked after it")
        self.workdir = workdir
        self.processes_to_run = processes
        self.setup = setup
        self.run_id = uuid.uuid4().hex[:8]
        self.port = free_port()
        self.prefix = f"e2e-{self.run_id}-"
        self.queues = [f"{self.prefix}{q}" for q in (*WORKERS, "dead_letter")]
        self.created_database: str | None = None
        database_url = os.environ.get("E2E_DATABASE_URL")
        if database_url:
            database_url, self.created_database = _sibling_database(database_url, self.run_id)
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "procurement_system.settings",
            # A fresh SQLite file by default; with E2E_DATABASE_URL, a fresh database on that
            # PostgreSQL server, to run the same tests there.
            "DATABASE_URL": database_url or f"sqlite:///{workdir / 'e2e.sqlite3'}",
            "CELERY_QUEUE_PREFIX": self.prefix,
            "CHANNEL_LAYER_PREFIX": f"e2e-{self.run_id}",
            "DJANGO_DEBUG": "false",
            # Production mode refuses the development secret key and redirects plain HTTP to
            # HTTPS; the stack serves plain HTTP on 127.0.0.1.
            "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50),
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "WEB_PORT": str(self.port),
            # The suite (schemathesis above all) sends more than a person would.
            "API_THROTTLE_USER": "100000/min",
            "API_THROTTLE_ANON": "100000/min",
            # ... and opens more sockets per user (a thousand for four users at once); the
            # security tests set the real limits on a stack of their own.
            "WEBSOCKET_MAX_PER_USER": "100000",
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.processes: dict[str, subprocess.Popen] = {}
        self.commands: dict[str, str] = {}
        # Where each process's current run starts in its log (a restarted process appends).
        self._log_starts: dict[str, int] = {}

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def start(self) -> None:
        if self.created_database:
            _create_database(self.env["DATABASE_URL"])
        for command in self.setup:
            self.manage(*command)
        procfile = procfile_commands()
        for name in self.processes_to_run:
            command = procfile[name]
            if name == "beat":
                # Beat's database scheduler keeps its state in the run's database; the schedule
                # file is named anyway, so nothing of a run is ever left in the repository.
                command += f" --schedule {self.workdir / 'celerybeat-schedule'}"
            self._spawn(name, command)
        wait_until(self._web_ready, timeout=30, what="uvicorn to answer /health/")
        for name in self.processes_to_run[1:]:
            wait_until(
                lambda n=name: self._ready(n), timeout=60, what=f"the {name} process to be ready"
            )

    def _ready(self, name: str) -> bool:
        if self.processes[name].poll() is not None:
            raise RuntimeError(f"{name} exited:\n{self.log(name)}")
        current = self.log(name)[self._log_starts.get(name, 0) :]
        if name == "beat":
            # Ready once it has read the periodic tasks and sent the first that was due.
            return "Scheduler: Sending due task" in current
        return "ready." in current

    def _spawn(self, name: str, command: str, *, append: bool = False) -> None:
        path = self.workdir / f"{name}.log"
        self._log_starts[name] = len(self.log(name)) if append and path.exists() else 0
        log = open(path, "a" if append else "w")  # noqa: SIM115 - closed with the process
        self.commands[name] = command
        # exec: the signal from stop() reaches the process itself, not a shell around it.
        self.processes[name] = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def _web_ready(self) -> bool:
        if self.processes["web"].poll() is not None:
            raise RuntimeError(f"uvicorn exited:\n{self.log('web')}")
        try:
            with urllib.request.urlopen(f"{self.http}/health/", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def log(self, name: str) -> str:
        """Everything the process wrote, over all its runs when it was restarted."""
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    # --- faults: signals, restarts ------------------------------------------------------------

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def children(self, name: str) -> list[int]:
        """The pids of the process's children (a Celery worker's pool processes)."""
        return _children(self.pid(name))

    def send_signal(self, name: str, signum: int) -> None:
        """Send ``signum`` to the process (not to its pool children)."""
        self.processes[name].send_signal(signum)

    def wait_exit(self, name: str, timeout: float) -> int:
        """Wait for the process to exit; its exit status (negative: the signal that ended it)."""
        return self.processes[name].wait(timeout=timeout)

    def kill(self, name: str) -> None:
        """SIGKILL the process, wait for it, and make sure none of its children outlive it (a
        Celery pool process gets SIGKILL from the kernel when its parent dies)."""
        children = self.children(name)
        self.processes[name].send_signal(signal.SIGKILL)
        self.processes[name].wait(timeout=10)
        _reap(children)

    def start_process(self, name: str, *, timeout: float = 60) -> None:
        """Start a process of the stack again (after it was killed or stopped) and wait until it
        is ready; its log goes on in the same file."""
        if self.processes[name].poll() is None:
            raise RuntimeError(f"{name} is still running")
        self._spawn(name, self.commands[name], append=True)
        if name == "web":
            wait_until(self._web_ready, timeout=timeout, what="uvicorn to answer /health/")
        else:
            wait_until(lambda: self._ready(name), timeout=timeout, what=f"{name} to be ready")

    def restart(self, name: str, *, timeout: float = 60) -> None:
        """SIGKILL the process and start it again."""
        self.kill(name)
        self.start_process(name, timeout=timeout)

    def tokens(self, *usernames: str) -> dict[str, str]:
        return {name: self.token(name) for name in usernames}

    def token(self, username: str, password: str = "demo-pass-123") -> str:
        request = urllib.request.Request(
            f"{self.http}/api/auth/token/",
            data=json.dumps({"username": username, "password": password}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)["token"]

    def stop(self) -> None:
        # Beat first, so that it publishes nothing more while the workers shut down.
        for name in sorted(self.processes, key=lambda n: n != "beat"):
            self.processes[name].terminate()
            if name == "beat":
                self._wait(self.processes[name])
        for process in self.processes.values():
            self._wait(process)
        try:
            self._delete_queues()
        finally:
            if self.created_database:
                _drop_database(self.env["DATABASE_URL"])
        if "web" in self.processes and "graceful shutdown exceeded" in self.log("web"):
            # Every socket was closed by then: some connection's task outlived its socket.
            raise AssertionError(
                f"uvicorn ran out its graceful-shutdown timeout: a connection's task was still "
                f"running after its socket closed (see {self.workdir / 'web.log'})"
            )

    @staticmethod
    def _wait(process: subprocess.Popen) -> None:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def queue_depths(self) -> dict[str, int]:
        """Messages ready in each of this stack's queues, by short name."""
        return {queue: self.queue_depth(queue) for queue in WORKERS}

    def queue_depth(self, queue: str) -> int:
        """Messages ready in one of this stack's queues (``assignments``, ...), not counting
        those a worker has already taken."""
        connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
        try:
            declared = connection.channel().queue_declare(f"{self.prefix}{queue}", passive=True)
            return declared.method.message_count
        finally:
            connection.close()

    def purge_queue(self, queue: str) -> None:
        connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
        try:
            connection.channel().queue_purge(f"{self.prefix}{queue}")
        finally:
            connection.close()

    def _delete_queues(self) -> None:
        connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
        try:
            channel = connection.channel()
            for queue in self.queues:
                channel.queue_delete(queue)
            channel.exchange_delete(f"{self.prefix}celery_tasks")
            channel.exchange_delete(f"{self.prefix}dead_letter")
            channel.exchange_delete(f"{self.prefix}procurement.events")
        finally:
            connection.close()


class Flower:
    """Flower from the Procfile, as ``make run`` starts it, beside a stack: the stack's broker,
    queue prefix and environment, a free port and the basic-auth ``credentials`` given."""

    def __init__(self, stack: Stack, *, credentials: str, **env: str) -> None:
        self.stack = stack
        self.credentials = credentials
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **stack.env,
            "FLOWER_PORT": str(self.port),
            "FLOWER_BASIC_AUTH": credentials,
            **env,
        }
        self.process: subprocess.Popen | None = None

    def start(self, *, timeout: float = 30) -> None:
        log = open(self.stack.workdir / "flower.log", "w")  # noqa: SIM115 - closed with it
        self.process = subprocess.Popen(
            ["bash", "-c", f"exec {procfile_commands()['flower']}"],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._listens, timeout=timeout, what="Flower to listen")

    def status(self, path: str, credentials: str | None = None) -> int:
        """The HTTP status Flower answers ``path`` with, sending ``credentials`` if any."""
        return self._get(path, credentials)[0]

    def get(self, path: str):
        """``path``'s JSON body, read with Flower's credentials; fails unless 200."""
        status, body = self._get(path, self.credentials)
        assert status == 200, f"Flower answered {status} to {path}: {body[:300]!r}"
        return json.loads(body)

    def log(self) -> str:
        return (self.stack.workdir / "flower.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _get(self, path: str, credentials: str | None) -> tuple[int, bytes]:
        headers = {}
        if credentials is not None:
            token = base64.b64encode(credentials.encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        request = urllib.request.Request(f"{self.url}{path}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def _listens(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"Flower exited with {self.process.returncode}:\n{self.log()}")
        try:
            return self._get("/", None)[0] > 0
        except OSError:
            return False


def _children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name, in parentheses, may hold spaces: the fields follow its end.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie, dead but not yet reaped by its parent, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _reap(pids: list[int], timeout: float = 10) -> None:
    """Wait until the processes ``pids`` are gone; SIGKILL those that are not by then."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# --- a database of its own on the server E2E_DATABASE_URL names ----------------------------


def _sibling_database(url: str, run_id: str) -> tuple[str, str]:
    """The URL of a new database beside the one ``url`` names, and the new database's name."""
    parts = urlsplit(url)
    name = f"{parts.path.lstrip('/') or 'postgres'}_e2e_{run_id}"
    return urlunsplit(parts._replace(path=f"/{name}")), name


def _admin_connection(url: str):
    """An autocommit connection to the server's maintenance database (CREATE/DROP DATABASE
    cannot run inside a transaction nor from the database concerned)."""
    import psycopg

    parts = urlsplit(url)
    return psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True)


def _create_database(url: str) -> None:
    from psycopg import sql

    name = urlsplit(url).path.lstrip("/")
    with _admin_connection(url) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _drop_database(url: str) -> None:
    from psycopg import sql

    name = urlsplit(url).path.lstrip("/")
    with _admin_connection(url) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
