"""The documentation's OpenAPI page (``docs/openapi.rst``, ``docs/_ext/openapi_page.py``).

The docs are built once, with warnings as errors; the schema they carry must be the one the code
generates now, and the page must show it, in Chromium, from ``file://`` with every other request
refused.
"""

import json
from pathlib import Path

import pytest
import yaml

DOCS = Path(__file__).resolve().parents[1] / "docs"
SCHEMA_SCRIPT_PREFIX = "window.OPENAPI_SCHEMA = "


def live_schema() -> dict:
    """The schema ``manage.py spectacular`` prints, as JSON reads it back."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    schema = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(schema, renderer_context={}))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    from sphinx.cmd.build import build_main

    out = tmp_path_factory.mktemp("docs")
    status = build_main(["-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(out)])
    assert status == 0, "the documentation build failed (its warnings are above)"
    return out


def test_the_built_site_carries_the_live_schema_and_its_downloads(site):
    script = (site / "_static" / "openapi.js").read_text()
    assert script.startswith(SCHEMA_SCRIPT_PREFIX)
    shown = json.loads(script.removeprefix(SCHEMA_SCRIPT_PREFIX).strip().removesuffix(";"))
    live = live_schema()
    assert sorted(shown["paths"]) == sorted(live["paths"])
    assert shown == live

    downloadable = yaml.safe_load((site / "openapi.yaml").read_text())
    assert downloadable == live

    page = (site / "openapi.html").read_text()
    assert 'href="openapi.yaml"' in page
    assert "cdn.redoc.ly" not in (site / "_static" / "redoc.standalone.js").read_text()
    for name in ("procurement.postman_collection.json", "procurement.postman_environment.json"):
        (copied,) = site.glob(f"_downloads/*/{name}")
        assert copied.read_bytes() == (DOCS / "postman" / name).read_bytes()
        assert f"{copied.relative_to(site).as_posix()}" in page


def test_redoc_renders_every_operation_without_a_network_request(chromium, site):
    from playwright.sync_api import expect

    operations = {
        operation["operationId"]: operation["summary"]
        for path in live_schema()["paths"].values()
        for operation in path.values()
    }
    context = chromium.new_context(viewport={"width": 1280, "height": 860})
    requested: list[str] = []
    refused: list[str] = []
    problems: list[str] = []

    def only_local_files(route) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    context.route("**/*", only_local_files)
    page = context.new_page()
    page.on("request", lambda request: requested.append(request.url))
    page.on("pageerror", lambda error: problems.append(f"pageerror: {error}"))
    page.on(
        "console",
        lambda m: problems.append(f"{m.type}: {m.text}") if m.type == "error" else None,
    )
    try:
        page.goto((site / "openapi.html").as_uri())
        sections = page.locator('.openapi-redoc [data-section-id*="/operation/"]')
        expect(sections).to_have_count(len(operations), timeout=20_000)
        for operation_id, summary in operations.items():
            heading = page.locator(f'[data-section-id$="/operation/{operation_id}"] h2')
            expect(heading).to_have_text(summary)
        assert any(url.partition("?")[0].endswith("/_static/openapi.js") for url in requested)
    finally:
        context.close()
    assert refused == []
    assert [url for url in requested if not url.startswith("file://")] == []
    assert problems == []
