"""The real stack for end-to-end tests: the Procfile's web and worker processes, as ``make run``
starts them.

Each run gets its own SQLite file, queue names and channel-layer prefix, so it can share
RabbitMQ and Redis with a ``make run`` on the same machine without taking its messages.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

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


class Stack:
    PROCESSES = ("web", "assignments", "notifications")

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.run_id = uuid.uuid4().hex[:8]
        self.port = free_port()
        self.prefix = f"e2e-{self.run_id}-"
        self.queues = [f"{self.prefix}{q}" for q in ("assignments", "notifications", "maintenance")]
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "procurement_system.settings",
            # A fresh SQLite file by default; E2E_DATABASE_URL points the stack elsewhere (an
            # empty PostgreSQL database, say) to run the same tests there.
            "DATABASE_URL": os.environ.get(
                "E2E_DATABASE_URL", f"sqlite:///{workdir / 'e2e.sqlite3'}"
            ),
            "CELERY_QUEUE_PREFIX": self.prefix,
            "CHANNEL_LAYER_PREFIX": f"e2e-{self.run_id}",
            "DJANGO_DEBUG": "false",
            "WEB_PORT": str(self.port),
            # The suite (schemathesis above all) sends more than a person would.
            "API_THROTTLE_USER": "100000/min",
            "API_THROTTLE_ANON": "100000/min",
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
        }
        self.processes: dict[str, subprocess.Popen] = {}

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
        self.manage("migrate", "--noinput")
        self.manage("createcachetable")
        self.manage("seed_demo")
        procfile = procfile_commands()
        for name in self.PROCESSES:
            self._spawn(name, procfile[name])
        wait_until(self._web_ready, timeout=30, what="uvicorn to answer /health/")
        for worker in self.PROCESSES[1:]:
            wait_until(
                lambda w=worker: "ready." in self.log(w),
                timeout=60,
                what=f"the {worker} worker to be ready",
            )

    def _spawn(self, name: str, command: str) -> None:
        log = open(self.workdir / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
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
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def token(self, username: str, password: str = "demo-pass-123") -> str:
        request = urllib.request.Request(
            f"{self.http}/api/auth/token/",
            data=json.dumps({"username": username, "password": password}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)["token"]

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._delete_queues()

    def _delete_queues(self) -> None:
        connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
        try:
            channel = connection.channel()
            for queue in self.queues:
                channel.queue_delete(queue)
            channel.exchange_delete(f"{self.prefix}tasks")
        finally:
            connection.close()
