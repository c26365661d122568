"""Prometheus metrics of the web process: HTTP requests, WebSocket connections and frames.

``/metrics`` serves them in the Prometheus text format (OpenMetrics when the scraper asks for
it). One uvicorn process (the Procfile's ``web``) keeps them in memory; several processes share
them through files when ``PROMETHEUS_MULTIPROC_DIR`` names an empty directory (see the
monitoring page of the docs). The Celery side (tasks, queues, workers) is Flower's ``/metrics``.

Labels take a bounded set of values only: the matched URL pattern's name, not the path; the
socket's route; a known action or ``unknown``; ``ok`` or an error code.
"""

import atexit
import hmac
import ipaddress
import os
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.exposition import choose_encoder

NAMESPACE = "procurement"

HTTP_REQUESTS = Counter(
    "http_requests",
    "HTTP requests answered, by method, view (the URL pattern's name) and status code.",
    ["method", "view", "status"],
    namespace=NAMESPACE,
)
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from the request reaching Django to its response, by method and view.",
    ["method", "view"],
    namespace=NAMESPACE,
)
WEBSOCKET_CONNECTIONS = Gauge(
    "websocket_connections",
    "WebSocket connections open now, by endpoint (accepted and not yet closed).",
    ["endpoint"],
    namespace=NAMESPACE,
    # With several processes: the sum over the processes that are alive.
    multiprocess_mode="livesum",
)
WEBSOCKET_MESSAGES = Counter(
    "websocket_messages",
    "WebSocket frames received, by endpoint, action (unknown: not a known action) and outcome "
    "(ok, the error frame's code, or closed when the frame closed the socket).",
    ["endpoint", "action", "outcome"],
    namespace=NAMESPACE,
)
WEBSOCKET_ACTION_DURATION = Histogram(
    "websocket_action_duration_seconds",
    "Time from a WebSocket frame's arrival to its reply, by endpoint and action.",
    ["endpoint", "action"],
    namespace=NAMESPACE,
)
#: every metric of the web process, for the documentation's table
METRICS = (
    HTTP_REQUESTS,
    HTTP_REQUEST_DURATION,
    WEBSOCKET_CONNECTIONS,
    WEBSOCKET_MESSAGES,
    WEBSOCKET_ACTION_DURATION,
)

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # The open-connections gauge sums the live processes: one that exits takes itself out (one
    # that is killed stays counted until the directory is emptied, before the processes start).
    atexit.register(lambda: multiprocess.mark_process_dead(os.getpid()))

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNKNOWN_ACTION = "unknown"


# --- HTTP -----------------------------------------------------------------------------------


def http_metrics(get_response: Callable[[HttpRequest], HttpResponse]):
    """Middleware, first in the list: counts and times every response Django gives."""

    def middleware(request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = get_response(request)
        method = request.method if request.method in _METHODS else "other"
        view = _view_of(request)
        HTTP_REQUEST_DURATION.labels(method, view).observe(time.perf_counter() - started)
        HTTP_REQUESTS.labels(method, view, str(response.status_code)).inc()
        return response

    return middleware


def _view_of(request: HttpRequest) -> str:
    """The URL pattern's name (``pickup-detail``, ``admin:index``), never the raw path."""
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return match.view_name or match.route
    if request.path.startswith(f"/{settings.STATIC_URL.lstrip('/')}"):
        return "static"  # served by WhiteNoise before any URL is resolved
    return "unmatched"


# --- WebSocket (called by JsonActionConsumer) -----------------------------------------------


def socket_opened(endpoint: str) -> None:
    WEBSOCKET_CONNECTIONS.labels(endpoint).inc()


def socket_closed(endpoint: str) -> None:
    WEBSOCKET_CONNECTIONS.labels(endpoint).dec()


def frame_answered(endpoint: str, action: str, outcome: str, seconds: float) -> None:
    WEBSOCKET_MESSAGES.labels(endpoint, action, outcome).inc()
    WEBSOCKET_ACTION_DURATION.labels(endpoint, action).observe(seconds)


# --- /metrics -------------------------------------------------------------------------------


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The metrics, for Prometheus. With ``METRICS_TOKEN`` set, only for a request that sends
    ``Authorization: Bearer <token>``; without it, only for requests from this machine."""
    if not _may_scrape(request):
        return HttpResponse("Forbidden.\n", status=403, content_type="text/plain")
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(_registry()), content_type=content_type)


def _may_scrape(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


def _registry() -> CollectorRegistry:
    """This process's metrics, or every process's when they share a directory."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return DEFAULT_REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry
