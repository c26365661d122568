from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import JsonResponse
from django.urls import include, path
from django.views.decorators.http import require_GET
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from pickups.api import PickupViewSet
from pickups.views import receipt_page
from procurement_system.task_status import TaskStatusView
from procurement_system.tokens import TokenView
from vendors.api import MeView

router = DefaultRouter()
router.register("pickups", PickupViewSet, basename="pickup")


@require_GET
def health(request):
    """The web process is up and serving (dependencies are not checked here)."""
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/auth/token/", TokenView.as_view(), name="api-token"),
    path("api/me/", MeView.as_view(), name="api-me"),
    path("api/tasks/<uuid:task_id>/", TaskStatusView.as_view(), name="api-task-status"),
    path("api/", include("vendors.urls")),
    path("api/", include("notifications.urls")),
    path("api/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("health/", health, name="health"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("pickups/<int:pickup_id>/receipt/", receipt_page, name="pickup-receipt"),
]

handler404 = "procurement_system.rest.api_not_found"
