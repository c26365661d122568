from django.contrib import admin, messages
from django.db.models import Count, F, QuerySet
from django.http import HttpRequest

from procurement_system.errors import DomainError
from vendors.models import Material, Vendor, VendorMaterial
from vendors.services import vendor_update_settings
from vendors.signals import vendor_can_take_more


@admin.register(Material)
class MaterialAdmin(admin.ModelAdmin):
    list_display = ["code", "name"]
    search_fields = ["code", "name"]


class VendorMaterialInline(admin.TabularInline):
    model = VendorMaterial
    extra = 0


class FreeCapacityFilter(admin.SimpleListFilter):
    """Vendors that could take another job now (fewer open jobs than their capacity), or not."""

    title = "has free capacity"
    parameter_name = "free_capacity"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No (full)")]

    def queryset(self, request, queryset):
        match self.value():
            case "yes":
                return queryset.filter(open_jobs__lt=F("capacity"))
            case "no":
                return queryset.filter(open_jobs__gte=F("capacity"))
        return queryset


@admin.register(Vendor)
class VendorAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "is_active",
        "is_online",
        "jobs",
        "members_count",
        "service_radius_km",
    ]
    list_filter = [
        "is_active",
        "is_online",
        ("materials__material", admin.RelatedOnlyFieldListFilter),
        FreeCapacityFilter,
    ]
    search_fields = ["name", "members__username", "members__email"]
    filter_horizontal = ["members"]
    readonly_fields = ["open_jobs"]
    inlines = [VendorMaterialInline]
    actions = ["switch_online", "switch_offline"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Vendor]:
        return super().get_queryset(request).annotate(members_total=Count("members", distinct=True))

    @admin.display(description="open jobs / capacity", ordering="open_jobs")
    def jobs(self, obj: Vendor) -> str:
        return f"{obj.open_jobs} / {obj.capacity}"

    @admin.display(description="members", ordering="members_total")
    def members_count(self, obj: Vendor) -> int:
        return obj.members_total

    def save_related(self, request, form, formsets, change) -> None:
        # After the inlines (the price list) are saved too: an operator's edit may let the
        # vendor take waiting pickups, as a member's change in the API does.
        super().save_related(request, form, formsets, change)
        vendor = form.instance
        if vendor.is_active and vendor.is_online:
            vendor_can_take_more.send(sender=Vendor, vendor_id=vendor.pk)

    @admin.action(description="Switch online", permissions=["change"])
    def switch_online(self, request: HttpRequest, queryset: QuerySet[Vendor]) -> None:
        self._switch(request, queryset, online=True)

    @admin.action(description="Switch offline", permissions=["change"])
    def switch_offline(self, request: HttpRequest, queryset: QuerySet[Vendor]) -> None:
        self._switch(request, queryset, online=False)

    def _switch(self, request: HttpRequest, queryset: QuerySet[Vendor], *, online: bool) -> None:
        """Through the vendors' own settings service, as a member's switch in the API: a vendor
        that comes online is offered the pickups waiting for one at once."""
        state = "online" if online else "offline"
        switched, failed = 0, []
        # Read once: the changelist's filters may select by the very flag being switched.
        rows = list(queryset.values_list("pk", "name", "is_online"))
        for vendor_id, name, is_online in rows:
            if is_online == online:
                continue
            try:
                vendor = vendor_update_settings(
                    vendor_id=vendor_id, by=request.user, is_online=online
                )
            except DomainError as error:
                failed.append(f"{name}: {error.message}")
                continue
            switched += 1
            self.log_change(request, vendor, f"Switched {state}.")
        unchanged = len(rows) - switched - len(failed)
        self.message_user(
            request,
            f"{switched} vendor{'' if switched == 1 else 's'} switched {state}"
            + (f"; {unchanged} already {state}." if unchanged else "."),
            messages.SUCCESS if switched or not failed else messages.WARNING,
        )
        if failed:
            self.message_user(request, f"Not switched: {'; '.join(failed)}", messages.ERROR)
