"""ReDoc's bundle as the API's own pages and the documentation serve it: without the one
address it would fetch by itself.

drf-spectacular-sidecar ships ReDoc's standalone bundle, so ``/api/redoc/`` needs no CDN, but the
bundle still loads its sidebar logo from Redocly's CDN. Here that address is blanked: an image
with no source fails without a request, and ReDoc leaves it out (its "API docs by Redocly" link
stays). The setting ``SPECTACULAR_SETTINGS["REDOC_DIST"]`` points ReDoc's page at
:func:`redoc_bundle_view` (drf-spectacular asks for ``<REDOC_DIST>/bundles/redoc.standalone.js``);
``docs/_ext/openapi_page.py`` copies the same bytes into the documentation.
"""

import hashlib
from functools import cache
from pathlib import Path

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import etag, require_safe

REDOC_LOGO = b'"https://cdn.redoc.ly/redoc/logo-mini.svg"'


@cache
def redoc_bundle() -> bytes:
    import drf_spectacular_sidecar

    bundle = (
        Path(drf_spectacular_sidecar.__file__).parent
        / "static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"
    )
    return bundle.read_bytes().replace(REDOC_LOGO, b'""')


@cache
def _redoc_bundle_etag() -> str:
    return hashlib.sha256(redoc_bundle()).hexdigest()[:32]


@require_safe
@etag(lambda request: _redoc_bundle_etag())
def redoc_bundle_view(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(redoc_bundle(), content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "public, max-age=86400"
    return response
