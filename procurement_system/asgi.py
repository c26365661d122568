"""ASGI entry point: ``uvicorn procurement_system.asgi:application``."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "procurement_system.settings")

# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.utils.module_loading import import_string  # noqa: E402

from procurement_system.websocket_auth import (  # noqa: E402
    OptionalOriginValidator,
    TokenOrSessionAuthMiddleware,
)

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": OptionalOriginValidator(
            TokenOrSessionAuthMiddleware(URLRouter(import_string(settings.WEBSOCKET_URLPATTERNS)))
        ),
    }
)

# Rarer collections, none of them walking what startup made, when configured (settings
# WEB_GC_THRESHOLDS and WEB_GC_FREEZE): a process with thousands of sockets stalled for seconds.
if settings.WEB_GC_THRESHOLDS:
    gc.set_threshold(*settings.WEB_GC_THRESHOLDS)
if settings.WEB_GC_FREEZE:
    gc.freeze()
