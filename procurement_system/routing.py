from django.urls import path

from notifications.consumers import NotificationConsumer
from pickups.consumers import PickupConsumer

websocket_urlpatterns = [
    path("ws/pickups/", PickupConsumer.as_asgi()),
    path("ws/notifications/", NotificationConsumer.as_asgi()),
]
