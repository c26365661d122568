"""The REST API's OpenAPI schema, rendered by ReDoc inside the documentation (``openapi.rst``).

Every HTML build generates the schema in-process, the way ``manage.py spectacular --validate``
does (the build fails if it is invalid), and writes into the output, before any page:

``_static/openapi.js``
   The schema as JSON, assigned to ``window.OPENAPI_SCHEMA``: a script, because browsers refuse
   to fetch a JSON file from a page opened as ``file://``.
``_static/redoc.standalone.js``
   ReDoc's bundle exactly as ``/api/redoc/`` serves it (``procurement_system.api_docs``): the
   one from ``drf-spectacular-sidecar``, without the logo it would fetch from Redocly's CDN.
``_static/openapi-page.css``
   Room for ReDoc in the theme.
``openapi.yaml``
   The schema for download (``:openapi-download:`openapi.yaml```).

The ``.. openapi-redoc::`` directive places ReDoc; only the pages that use it load the scripts.
Nothing is fetched over the network, at build time or when reading. The page's text does not
depend on the schema, but its script tags carry a checksum of ``openapi.js``: when the schema
changes, the pages that show it are read and written again (see ``env_get_outdated``).
"""

import hashlib
import json
from pathlib import Path

from docutils import nodes
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective
from sphinx.util.osutil import relative_uri

from procurement_system.api_docs import redoc_bundle

HTML_BUILDERS = frozenset({"html", "dirhtml", "singlehtml"})
SCHEMA_GLOBAL = "OPENAPI_SCHEMA"
# What ``:openapi-download:`` links to: the files written into the output's root.
SCHEMA_FILES = frozenset({"openapi.yaml"})
# ReDoc's own options. The theme's fonts instead of ReDoc's Roboto and Montserrat (which its
# usual HTML page loads from Google Fonts); no hostname, as the page's own would be ``file://``.
REDOC_OPTIONS = {
    "hideDownloadButton": False,
    "hideHostname": True,
    "expandResponses": "200,201",
    "theme": {
        "typography": {
            "fontFamily": "var(--font-stack)",
            "headings": {"fontFamily": "var(--font-stack)"},
            "code": {"fontFamily": "var(--font-stack--monospace)"},
        },
    },
}
INIT_JS = """(function () {
  function start() {
    var element = document.querySelector(".openapi-redoc");
    Redoc.init(window.%(schema)s, %(options)s, element);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();"""
PAGE_CSS = """/* The OpenAPI page: ReDoc takes all the width the theme has, light in either colour scheme. */
.main:has(.openapi-redoc) {
  min-width: 0;
}
.content:has(.openapi-redoc) {
  width: auto;
  flex: 1 1 auto;
  min-width: 0;
}
.openapi-redoc {
  margin: 1.5rem 0;
  border: 1px solid var(--color-background-border);
  border-radius: 0.25rem;
  background: #fff;
  color: #333;
  color-scheme: light;
}
"""


class openapi_redoc(nodes.General, nodes.Element):  # noqa: N801 (docutils names nodes so)
    """Where ReDoc renders the schema."""


class openapi_download(nodes.Inline, nodes.TextElement):  # noqa: N801
    """A link to one of the schema files the extension writes into the output's root."""


class OpenApiRedoc(SphinxDirective):
    """``.. openapi-redoc::``: ReDoc with the REST API's schema (HTML builders only)."""

    def run(self) -> list[nodes.Node]:
        pages = getattr(self.env, "openapi_pages", set())
        pages.add(self.env.docname)
        self.env.openapi_pages = pages
        return [openapi_redoc()]


def openapi_download_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """``:openapi-download:`openapi.yaml```: the schema file, relative to the page."""
    if text not in SCHEMA_FILES:
        message = inliner.reporter.error(
            f"openapi-download: {text!r} is not one of {sorted(SCHEMA_FILES)}", line=lineno
        )
        return [inliner.problematic(rawtext, rawtext, message)], [message]
    return [openapi_download(rawtext, text, filename=text)], []


def visit_openapi_redoc_html(self, node: openapi_redoc) -> None:
    if self.builder.name in HTML_BUILDERS:
        self.body.append('<div class="openapi-redoc"></div>\n')
    raise nodes.SkipNode


def visit_openapi_download_html(self, node: openapi_download) -> None:
    if self.builder.name not in HTML_BUILDERS:  # e.g. epub: no schema files beside it
        self.body.append(self.encode(node.astext()))
        raise nodes.SkipNode
    page = self.builder.get_target_uri(self.builder.current_docname)
    href = relative_uri(page, node["filename"])
    self.body.append(
        f'<a class="reference download internal" download="" href="{self.encode(href)}">'
        f'<code class="xref download docutils literal notranslate"><span class="pre">'
        f"{self.encode(node.astext())}</span></code></a>"
    )
    raise nodes.SkipNode


def skip(self, node: nodes.Element) -> None:
    raise nodes.SkipNode


def visit_openapi_download_text(self, node: openapi_download) -> None:
    # Other formats have no generated schema beside them; the name is all they can show.
    pass


def depart_nothing(self, node: nodes.Element) -> None:
    pass


def generate_schema() -> tuple[bytes, bytes]:
    """The schema as ``manage.py spectacular --validate`` makes it: (JSON, YAML)."""
    from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiYamlRenderer
    from drf_spectacular.settings import spectacular_settings
    from drf_spectacular.validation import validate_schema

    generator = spectacular_settings.DEFAULT_GENERATOR_CLASS()
    schema = generator.get_schema(request=None, public=True)
    try:
        validate_schema(schema)
    except Exception as error:
        raise ExtensionError(f"The OpenAPI schema is invalid: {error}") from error
    return (
        OpenApiJsonRenderer().render(schema, renderer_context={}),
        OpenApiYamlRenderer().render(schema, renderer_context={}),
    )


def write_if_changed(path: Path, content: bytes) -> None:
    """Leave a file that is already up to date alone, so its time stamp says when it changed."""
    if not path.is_file() or path.read_bytes() != content:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def builder_inited(app) -> None:
    if app.builder.name not in HTML_BUILDERS:
        return
    schema_json, schema_yaml = generate_schema()
    # Compact, and ASCII only, so the script's encoding never matters.
    compact = json.dumps(json.loads(schema_json), separators=(",", ":"))
    script = f"window.{SCHEMA_GLOBAL} = {compact};\n".encode()
    app.openapi_schema_digest = hashlib.sha256(script).hexdigest()
    static = Path(app.outdir) / "_static"
    write_if_changed(static / "openapi.js", script)
    write_if_changed(static / "redoc.standalone.js", redoc_bundle())
    write_if_changed(static / "openapi-page.css", PAGE_CSS.encode())
    write_if_changed(Path(app.outdir) / "openapi.yaml", schema_yaml)


def env_get_outdated(app, env, added, changed, removed) -> list[str]:
    """Read and write again the pages that show the schema when it is not the one they have."""
    digest = getattr(app, "openapi_schema_digest", None)
    if digest is None or getattr(env, "openapi_schema_digest", None) == digest:
        return []
    env.openapi_schema_digest = digest
    return sorted(getattr(env, "openapi_pages", set()) - set(removed))


def env_purge_doc(app, env, docname: str) -> None:
    getattr(env, "openapi_pages", set()).discard(docname)


def env_merge_info(app, env, docnames, other) -> None:
    pages = getattr(env, "openapi_pages", set())
    pages |= getattr(other, "openapi_pages", set())
    env.openapi_pages = pages


def html_page_context(app, pagename, templatename, context, doctree) -> None:
    if doctree is None or doctree.next_node(openapi_redoc) is None:
        return
    options = {**redoc_ui_settings(), **REDOC_OPTIONS}
    app.add_css_file("openapi-page.css")
    app.add_js_file("redoc.standalone.js")
    app.add_js_file("openapi.js")
    app.add_js_file(None, body=INIT_JS % {"schema": SCHEMA_GLOBAL, "options": json.dumps(options)})


def redoc_ui_settings() -> dict:
    """The project's own ReDoc settings (``SPECTACULAR_SETTINGS["REDOC_UI_SETTINGS"]``)."""
    from drf_spectacular.settings import spectacular_settings

    return dict(spectacular_settings.REDOC_UI_SETTINGS or {})


def setup(app):
    # Outside HTML the ReDoc block is left out, and the download link is its text.
    others = ("latex", "text", "man", "texinfo")
    app.add_node(
        openapi_redoc,
        html=(visit_openapi_redoc_html, None),
        **dict.fromkeys(others, (skip, None)),
    )
    app.add_node(
        openapi_download,
        html=(visit_openapi_download_html, None),
        **dict.fromkeys(others, (visit_openapi_download_text, depart_nothing)),
    )
    app.add_directive("openapi-redoc", OpenApiRedoc)
    app.add_role("openapi-download", openapi_download_role)
    app.connect("builder-inited", builder_inited)
    app.connect("env-get-outdated", env_get_outdated)
    app.connect("env-purge-doc", env_purge_doc)
    app.connect("env-merge-info", env_merge_info)
    app.connect("html-page-context", html_page_context)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}
