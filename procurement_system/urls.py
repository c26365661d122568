from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from notifications import views as notification_views
from pickups import views as pickup_views
from pickups.api import PickupViewSet
from procurement_system import health, metrics
from procurement_system.api_docs import redoc_bundle_view
from procurement_system.task_status import TaskStatusView
from procurement_system.tokens import TokenView
from vendors import views as portal
from vendors.api import MeView

router = DefaultRouter()
router.register("pickups", PickupViewSet, basename="pickup")


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
    path("api/redoc/bundles/redoc.standalone.js", redoc_bundle_view, name="api-redoc-bundle"),
    # Liveness, readiness and the Prometheus metrics (see docs/monitoring.rst).
    path("health/", health.health, name="health"),
    path("ready/", health.ready, name="ready"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # The browser pages: the customer's pickups, the vendor portal, the notifications panel.
    path("", pickup_views.home, name="home"),
    path("pickups/", pickup_views.customer_pickups, name="customer-pickups"),
    path("pickups/panel/", pickup_views.customer_pickups_panel, name="customer-pickups-panel"),
    path("pickups/<int:pickup_id>/", pickup_views.customer_pickup, name="customer-pickup"),
    path(
        "pickups/<int:pickup_id>/panel/",
        pickup_views.customer_pickup_panel,
        name="customer-pickup-panel",
    ),
    path("pickups/<int:pickup_id>/cancel/", pickup_views.customer_cancel, name="customer-cancel"),
    path(
        "pickups/<int:pickup_id>/reject-vendor/",
        pickup_views.customer_reject_vendor,
        name="customer-reject-vendor",
    ),
    path("pickups/<int:pickup_id>/receipt/", pickup_views.receipt_page, name="pickup-receipt"),
    path("portal/", portal.portal_home, name="portal-home"),
    path("portal/<int:vendor_id>/", portal.portal, name="portal"),
    path("portal/<int:vendor_id>/online/", portal.vendor_online, name="portal-online"),
    path("portal/<int:vendor_id>/settings/", portal.vendor_settings, name="portal-settings"),
    path("portal/<int:vendor_id>/<slug:panel>/", portal.portal_panel, name="portal-panel"),
    path("portal/pickups/<int:pickup_id>/accept/", portal.offer_accept, name="offer-accept"),
    path("portal/pickups/<int:pickup_id>/reject/", portal.offer_reject, name="offer-reject"),
    path("portal/pickups/<int:pickup_id>/advance/", portal.job_advance, name="job-advance"),
    path(
        "notifications/panel/",
        notification_views.notifications_panel,
        name="notifications-panel",
    ),
    path("notifications/read/", notification_views.notifications_read, name="notifications-read"),
]

handler404 = "procurement_system.rest.api_not_found"
