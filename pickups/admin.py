from django.contrib import admin

from pickups.models import PickupItem, PickupRejection, PickupRequest, PickupTransition


class PickupItemInline(admin.TabularInline):
    model = PickupItem
    extra = 0


class PickupRejectionInline(admin.TabularInline):
    model = PickupRejection
    extra = 0
    readonly_fields = ["vendor", "rejected_by", "role", "reason", "created_at"]
    can_delete = False


class PickupTransitionInline(admin.TabularInline):
    model = PickupTransition
    extra = 0
    readonly_fields = ["event", "from_status", "to_status", "actor", "vendor", "created_at"]
    can_delete = False


@admin.register(PickupRequest)
class PickupRequestAdmin(admin.ModelAdmin):
    """Status and vendor are read-only here: they change only through the services."""

    list_display = ["id", "customer", "status", "vendor", "window_start", "created_at"]
    list_filter = ["status", "vendor"]
    search_fields = ["id", "customer__username", "address"]
    readonly_fields = ["status", "vendor", "version", "idempotency_key", "status_changed_at"]
    inlines = [PickupItemInline, PickupRejectionInline, PickupTransitionInline]
