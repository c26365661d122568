"""The docs must cover what a user can meet in the code, and nothing the code does not have.

Error codes, notification kinds, statuses and transitions are drawn into the docs from the code
by ``docs/_ext/platform_tables.py`` (the build fails when they disagree); this checks the rest.
"""

import re
from pathlib import Path

from notifications.consumers import NotificationConsumer
from pickups.consumers import PickupConsumer
from procurement_system.celery import app
from procurement_system.websocket import CLOSE_MESSAGE_TOO_BIG, CLOSE_UNAUTHENTICATED

DOCS = Path(__file__).resolve().parents[1] / "docs"


def text(page: str) -> str:
    return (DOCS / page).read_text()


def test_every_websocket_action_has_an_example_frame_and_no_other_is_shown():
    documented = set(re.findall(r'"action":\s*"(\w+)"', text("websocket-api.rst")))
    assert documented == PickupConsumer.actions | NotificationConsumer.actions


def test_close_codes_are_documented():
    page = text("websocket-api.rst")
    for code in (CLOSE_UNAUTHENTICATED, CLOSE_MESSAGE_TOO_BIG):
        assert str(code) in page


def test_every_project_task_is_documented_and_every_documented_task_exists():
    app.loader.import_default_modules()
    ours = {name for name in app.tasks if not name.startswith("celery.")}
    documented = set(re.findall(r"autotask:: ([\w.]+)", text("tasks.rst")))
    assert documented == ours


def test_every_queue_is_documented():
    page = text("tasks.rst")
    for queue in ("assignments", "notifications", "maintenance"):
        assert f"``{queue}``" in page


def rest_endpoints() -> set[str]:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {
        f"{method.upper()} {path}"
        for path, operations in schema["paths"].items()
        for method in operations
    }


def test_every_rest_endpoint_is_documented_and_every_documented_one_exists():
    page = text("rest-api.rst")
    documented = set(re.findall(r"\b(GET|POST|PUT|PATCH|DELETE) (/api/[\w/{}-]*)", page))
    documented = {f"{method} {path}" for method, path in documented} - {"GET /api/"}
    assert documented == rest_endpoints()


def test_the_state_diagram_draws_every_event_and_status():
    from pickups.transitions import Event, Status

    diagram = (
        text("state-machine.rst").split(".. code-block:: text", 1)[1].split("\nTransitions")[0]
    )
    words = set(re.findall(r"[a-z_]+", diagram))
    assert {e.value for e in Event} <= words
    assert {s.value for s in Status} <= words


def test_the_logging_and_monitoring_variables_are_in_the_configuration_table():
    import sys

    sys.path.insert(0, str(DOCS / "_ext"))
    from platform_tables import MONITORING_SETTINGS_BLOCKS, _settings_in_source

    variables = {
        variable
        for block, variable, _ in _settings_in_source().values()
        if block in MONITORING_SETTINGS_BLOCKS and variable is not None
    }
    assert variables == {"LOG_LEVEL", "LOG_FORMAT", "READY_CHECK_TIMEOUT_SECONDS", "METRICS_TOKEN"}
    configuration = text("architecture.rst").split(".. _configuration:", 1)[1]
    for variable in variables | {"PROMETHEUS_MULTIPROC_DIR"}:
        assert f"``{variable}``" in configuration


def test_the_monitoring_page_covers_the_endpoints_and_the_ready_checks():
    from procurement_system.health import CHECKS

    page = text("monitoring.rst")
    for endpoint in ("/health/", "/ready/", "/metrics", "PROMETHEUS_MULTIPROC_DIR"):
        assert endpoint in page
    for check in CHECKS:
        assert f"   * - ``{check}``" in page
