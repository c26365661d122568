"""Check every internal link of the built HTML site, after the build, without the network.

Sphinx itself reports a cross-reference that does not resolve (``:ref:``, ``:doc:``), but not a
link it only copies through: a raw ``href`` in embedded HTML, a hand-written relative link, an
anchor that a heading's rename removed. So once the HTML is written, this reads every page and
warns about each relative link whose file is not in the output, or whose ``#fragment`` names no
``id`` in that page. The build runs with ``-W``, so one broken link fails it. External links
(``http:``, ``mailto:``, ...) are not fetched: the build must not need the network.
"""

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sphinx.util import logging

logger = logging.getLogger(__name__)

# The attributes that point at another file of the site, per tag.
LINK_ATTRIBUTES = {"a": "href", "link": "href", "img": "src", "script": "src", "iframe": "src"}


class _Page(HTMLParser):
    """The ids a page defines and the links it makes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("id", "name"):  # ``<a name=...>`` is an anchor too
            if values.get(name) and (name == "id" or tag == "a"):
                self.ids.add(values[name])
        link = values.get(LINK_ATTRIBUTES.get(tag, ""))
        if link:
            self.links.append(link)


def _is_internal(link: str) -> bool:
    parts = urlsplit(link)
    return not (parts.scheme or parts.netloc or link.startswith("//"))


def broken_links(root: Path) -> list[tuple[str, str, str]]:
    """Each broken internal link under ``root``: (page, link, why), sorted."""
    pages: dict[Path, _Page] = {}
    for path in sorted(root.rglob("*.html")):
        page = _Page()
        page.feed(path.read_text(encoding="utf-8", errors="replace"))
        pages[path.resolve()] = page
    broken = []
    for path, page in pages.items():
        for link in page.links:
            if not _is_internal(link):
                continue
            parts = urlsplit(link)
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            page_name = str(path.relative_to(root.resolve()))
            if not target.is_file():
                broken.append((page_name, link, "no such file in the site"))
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else set()
                if unquote(parts.fragment) not in ids:
                    broken.append((page_name, link, "no such anchor in that page"))
    return sorted(set(broken))


def check_links(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    for page, link, why in broken_links(Path(app.outdir)):
        logger.warning("broken internal link in %s: %s (%s)", page, link, why)


def setup(app):
    app.connect("build-finished", check_links)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
