"""The systemd units in docker/systemd/ (see the deployment docs) run exactly the Procfile's
commands, as compose does, so the three ways of starting the platform cannot drift apart; and
each stops gracefully: systemd waits for uvicorn's graceful shutdown and the workers' warm one."""

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.test_docker import compose, expand, longest_time_limit, procfile, seconds

SYSTEMD = Path(__file__).resolve().parents[1] / "docker" / "systemd"
VENV_BIN = "/opt/procurement/.venv/bin/"
ENVIRONMENT_FILE = "/etc/procurement/procurement.env"
WEB_INSTANCE = "8001"  # procurement-web@8001.service
WORKERS = ("assignments", "notifications", "maintenance")


def unit_name(process: str) -> str:
    return "procurement-web@.service" if process == "web" else f"procurement-{process}.service"


def directives(process: str) -> dict[str, str]:
    """The unit's ``Key=value`` lines (each key is set once in these units)."""
    lines = (SYSTEMD / unit_name(process)).read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if re.match(r"^[A-Z]\w*=", line))


def environment_file() -> dict[str, str]:
    lines = (SYSTEMD / "procurement.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def procfile_words(process: str) -> list[str]:
    """The Procfile's command for ``process``, split as a shell would, variables unexpanded."""
    lines = (SYSTEMD.parents[1] / "Procfile").read_text().splitlines()
    return shlex.split(
        next(line.split(": ", 1)[1] for line in lines if line.startswith(f"{process}: "))
    )


def systemd_command(process: str) -> list[str]:
    """ExecStart as systemd runs it: ``%%`` is ``%``, ``%i`` the instance, ``${VAR}`` from the
    EnvironmentFile, and the executable from the virtual environment."""
    line = directives(process)["ExecStart"]
    # Any other specifier (a bare %h is the service user's home) is what systemd, not the
    # program, would expand: left visibly different from the Procfile.
    specifiers = {"%": "%", "i": WEB_INSTANCE}
    line = re.sub(r"%(.)", lambda m: specifiers.get(m.group(1), f"<%{m.group(1)}>"), line)
    line = re.sub(r"\$\{(\w+)\}", lambda m: environment_file()[m.group(1)], line)
    executable, *args = shlex.split(line)
    assert executable.startswith(VENV_BIN), executable
    return [executable.removeprefix(VENV_BIN), *args]


@pytest.mark.parametrize("process", list(procfile()))
def test_each_unit_runs_the_procfile_command(process):
    env = {**environment_file(), "WEB_PORT": WEB_INSTANCE}
    assert systemd_command(process) == [expand(arg, env) for arg in procfile_words(process)]


@pytest.mark.parametrize("process", list(procfile()))
def test_each_unit_runs_as_the_service_user_with_the_environment_file_and_restarts(process):
    unit = directives(process)
    assert (unit["User"], unit["Group"]) == ("procurement", "procurement")
    assert unit["EnvironmentFile"] == ENVIRONMENT_FILE
    assert unit["WorkingDirectory"] == "/opt/procurement"
    assert unit["Restart"] == "always"
    assert unit["PartOf"] == unit["WantedBy"] == "procurement.target"


def test_the_environment_file_sets_every_variable_the_units_use():
    used = set()
    for process in procfile():
        used |= set(re.findall(r"\$\{(\w+)\}", directives(process)["ExecStart"]))
    assert used <= set(environment_file())
    # ... and what the containers are given, service addresses and secrets included.
    assert set(compose()["x-app"]["environment"]) <= set(environment_file())
    assert environment_file()["DJANGO_DEBUG"] == "false"


def test_the_target_starts_every_process():
    target = (SYSTEMD / "procurement.target").read_text()
    wanted = {w for line in re.findall(r"^Wants=(.*)$", target, re.M) for w in line.split()}
    assert {f"procurement-{p}.service" for p in procfile() if p != "web"} <= wanted
    assert f"procurement-web@{WEB_INSTANCE}.service" in wanted


def test_web_stops_after_uvicorns_graceful_shutdown():
    web = procfile()["web"]
    graceful = int(web[web.index("--timeout-graceful-shutdown") + 1])
    assert int(directives("web")["TimeoutStopSec"]) > graceful


@pytest.mark.parametrize("worker", WORKERS)
def test_a_worker_stops_warm_within_its_queues_longest_task(worker):
    unit = directives(worker)
    # SIGTERM to the main process only: a pool process that got it too would die mid-task.
    assert (unit["KillSignal"], unit["KillMode"]) == ("SIGTERM", "mixed")
    assert int(unit["TimeoutStopSec"]) >= longest_time_limit(worker) + 5
    assert int(unit["TimeoutStopSec"]) == seconds(
        compose()["services"][worker]["stop_grace_period"]
    )


def test_the_units_pass_systemd_analyze(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    for unit in SYSTEMD.glob("procurement*.*"):
        if unit.suffix in (".service", ".target"):
            (tmp_path / unit.name).write_text(unit.read_text())
    names = [
        f"procurement-web@{WEB_INSTANCE}.service" if "@" in unit.name else unit.name
        for unit in tmp_path.iterdir()
    ]
    done = subprocess.run(
        [analyze, "verify", *(str(tmp_path / name) for name in names)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # The executables are on the server, not here; anything else about our units is an error.
    problems = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if line.startswith("procurement") and "is not executable" not in line
    ]
    assert problems == []
