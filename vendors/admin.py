from django.contrib import admin

from vendors.models import Material, Vendor, VendorMaterial


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
