from django.contrib import admin

from pickups.models import (
    PickupItem,
    PickupRejection,
    PickupRequest,
    PickupTransition,
    Receipt,
    ReceiptLine,
)


class ViewOnly:
    """Pickups change only through the services (which lock, validate, log and notify), so the
    admin shows them without offering a way around those rules."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class PickupItemInline(ViewOnly, admin.TabularInline):
    model = PickupItem


class PickupRejectionInline(ViewOnly, admin.TabularInline):
    model = PickupRejection


class PickupTransitionInline(ViewOnly, admin.TabularInline):
    model = PickupTransition


@admin.register(PickupRequest)
class PickupRequestAdmin(ViewOnly, admin.ModelAdmin):
    list_display = ["id", "customer", "status", "vendor", "window_end", "created_at"]
    list_filter = ["status", "vendor"]
    search_fields = ["id", "customer__username", "address"]
    inlines = [PickupItemInline, PickupRejectionInline, PickupTransitionInline]


class ReceiptLineInline(ViewOnly, admin.TabularInline):
    model = ReceiptLine


@admin.register(Receipt)
class ReceiptAdmin(ViewOnly, admin.ModelAdmin):
    list_display = ["number", "pickup", "vendor_name", "total", "currency", "issued_at"]
    list_filter = ["vendor"]
    search_fields = ["pickup__id", "vendor_name"]
    inlines = [ReceiptLineInline]
