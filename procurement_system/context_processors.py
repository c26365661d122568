"""Template context shared by the project's own pages and its admin overrides."""

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def operations(request: HttpRequest) -> dict[str, Any]:
    """Where operators find Flower (no trailing slash), or "" when it is not linked."""
    return {"FLOWER_URL": settings.FLOWER_URL.rstrip("/")}
