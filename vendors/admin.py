from django.contrib import admin

from vendors.models import Material, Vendor, VendorMaterial
from vendors.signals import vendor_can_take_more


@admin.register(Material)
class MaterialAdmin(admin.ModelAdmin):
    list_display = ["code", "name"]
    search_fields = ["code", "name"]


class VendorMaterialInline(admin.TabularInline):
    model = VendorMaterial
    extra = 0


@admin.register(Vendor)
class VendorAdmin(admin.ModelAdmin):
    list_display = ["name", "is_active", "is_online", "open_jobs", "capacity", "service_radius_km"]
    list_filter = ["is_active", "is_online"]
    search_fields = ["name", "members__username"]
    filter_horizontal = ["members"]
    readonly_fields = ["open_jobs"]
    inlines = [VendorMaterialInline]

    def save_related(self, request, form, formsets, change) -> None:
        # After the inlines (the price list) are saved too: an operator's edit may let the
        # vendor take waiting pickups, as a member's change in the API does.
        super().save_related(request, form, formsets, change)
        vendor = form.instance
        if vendor.is_active and vendor.is_online:
            vendor_can_take_more.send(sender=Vendor, vendor_id=vendor.pk)
