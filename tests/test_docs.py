"""The docs must cover what a user can meet in the code, and nothing the code does not have.

Error codes, notification kinds, statuses and transitions are drawn into the docs from the code
by ``docs/_ext/platform_tables.py`` (the build fails when they disagree), and the state diagram
by ``docs/_ext/diagrams.py``; this checks the rest, each in both directions: what the code has
and the docs lack, and what the docs show and the code does not have. The WebSocket API's
AsyncAPI document is held to the code by ``tests/test_asyncapi.py``.
"""

import re
import sys
from pathlib import Path

from notifications.consumers import NotificationConsumer
from pickups.consumers import PickupConsumer
from procurement_system.celery import app
from procurement_system.websocket import CLOSE_MESSAGE_TOO_BIG, CLOSE_UNAUTHENTICATED

DOCS = Path(__file__).resolve().parents[1] / "docs"
sys.path.insert(0, str(DOCS / "_ext"))


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


def test_the_state_diagram_draws_every_transition_and_nothing_else():
    from diagrams import state_machine_dot

    from pickups.transitions import TRANSITIONS, Status

    dot = state_machine_dot()
    edges = set(re.findall(r"^  (\w+) -> (\w+) \[.*label=\" (\w+)\"\];$", dot, re.MULTILINE))
    drawn = {(source, event, target) for source, target, event in edges}
    assert drawn == {
        (source.value, event.value, target.value) for (source, event), target in TRANSITIONS.items()
    } | {("create", "create", "pending")}
    boxes = set(re.findall(r"^  (\w+) \[fillcolor=", dot, re.MULTILINE))
    assert boxes == {status.value for status in Status}
    assert ".. pickup-state-diagram::" in text("state-machine.rst")


def test_every_error_code_is_explained_on_the_websocket_page_and_no_other():
    from procurement_system.errors import WEBSOCKET_ERROR_CODES

    usage = text("websocket-api.rst").split("How the codes are used in practice:", 1)[1]
    usage = usage.split("\nExamples:", 1)[0]
    explained = re.findall(r"^``(\w+)``$", usage, re.MULTILINE)
    assert sorted(explained) == sorted(WEBSOCKET_ERROR_CODES)
    assert len(explained) == len(set(explained))


def test_every_notification_kind_is_described_and_no_other():
    from platform_tables import KIND_EXTRA_DATA

    from notifications.kinds import KINDS

    assert set(KIND_EXTRA_DATA) == set(KINDS)
    assert ".. notification-kind-table::" in text("websocket-api.rst")


def test_every_page_is_in_the_table_of_contents():
    index = text("index.rst")
    listed = set(re.findall(r"^   ([\w-]+)$", index, re.MULTILINE))
    pages = {path.stem for path in DOCS.glob("*.rst")} - {"index"}
    assert listed == pages


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


def test_the_link_check_finds_missing_pages_and_anchors(tmp_path):
    from link_check import broken_links

    (tmp_path / "sub").mkdir()
    (tmp_path / "index.html").write_text(
        '<h1 id="top">x</h1><a href="#top">ok</a><a href="sub/page.html#part">ok</a>'
        '<a href="missing.html">no file</a><a href="sub/page.html#gone">no anchor</a>'
        '<a href="https://example.com/x.html">external</a><img src="_images/a.png">'
        '<a href="#nowhere">no anchor here</a><a href="sub/">a folder\'s index</a>'
    )
    (tmp_path / "sub" / "page.html").write_text('<section id="part"></section>')
    (tmp_path / "sub" / "index.html").write_text("")
    assert broken_links(tmp_path) == [
        ("index.html", "#nowhere", "no such anchor in that page"),
        ("index.html", "_images/a.png", "no such file in the site"),
        ("index.html", "missing.html", "no such file in the site"),
        ("index.html", "sub/page.html#gone", "no such anchor in that page"),
    ]
