"""The benchmark stack's sockets: the platform's, and the naive one it is compared with."""

from django.urls import path

from bench.consumers import NaiveNotificationConsumer
from procurement_system.routing import websocket_urlpatterns as platform_urlpatterns

websocket_urlpatterns = [
    *platform_urlpatterns,
    path("ws/naive/notifications/", NaiveNotificationConsumer.as_asgi()),
]
