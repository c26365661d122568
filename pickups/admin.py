from datetime import timedelta

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from pickups.models import (
    PickupItem,
    PickupRejection,
    PickupRequest,
    PickupTransition,
    Receipt,
    ReceiptLine,
)
from pickups.operations import assignment_outcome
from pickups.services import pickup_rerun_assignment
from procurement_system.errors import InvalidTransition, NotFound

admin.site.site_header = "Procurement operations"
admin.site.site_title = "Procurement operations"
admin.site.index_title = "Operations"


class ViewOnly:
    """Pickups change only through the services (which lock, validate, log and notify), so the
    admin shows them without offering a way around those rules."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def flower_task_url(task_id: str) -> str | None:
    """The task's page in Flower, or None when Flower is not linked (``FLOWER_URL`` empty)."""
    base = settings.FLOWER_URL.rstrip("/")
    return f"{base}/task/{task_id}" if base and task_id else None


def render_status_badge(status: str, label: str):
    """The status as a coloured badge (styled in templates/admin/base_site.html)."""
    return format_html('<span class="status-badge status-{}">{}</span>', status, label)


class WindowEndFilter(admin.SimpleListFilter):
    """When the requested window ends, as seen from now: what is about to expire, what did."""

    title = "window end"
    parameter_name = "window"

    def lookups(self, request, model_admin):
        return [
            ("ended", "Ended"),
            ("1h", "Ends within an hour"),
            ("24h", "Ends within 24 hours"),
            ("later", "Ends later"),
        ]

    def queryset(self, request, queryset):
        now = timezone.now()
        match self.value():
            case "ended":
                return queryset.filter(window_end__lte=now)
            case "1h":
                return queryset.filter(window_end__gt=now, window_end__lte=now + timedelta(hours=1))
            case "24h":
                return queryset.filter(window_end__gt=now, window_end__lte=now + timedelta(days=1))
            case "later":
                return queryset.filter(window_end__gt=now + timedelta(days=1))
        return queryset


class PickupItemInline(ViewOnly, admin.TabularInline):
    model = PickupItem


class PickupRejectionInline(ViewOnly, admin.TabularInline):
    model = PickupRejection


class PickupTransitionInline(ViewOnly, admin.TabularInline):
    model = PickupTransition


@admin.register(PickupRequest)
class PickupRequestAdmin(ViewOnly, admin.ModelAdmin):
    list_display = [
        "id",
        "status_badge",
        "customer",
        "vendor",
        "window_end",
        "created_at",
        "assignment_task",
    ]
    list_display_links = ["id"]
    list_select_related = ["customer", "vendor"]
    list_filter = [
        "status",
        "vendor",
        ("items__material", admin.RelatedOnlyFieldListFilter),
        WindowEndFilter,
    ]
    date_hierarchy = "created_at"
    search_fields = [
        "=id",
        "customer__username",
        "customer__email",
        "address",
        "vendor__name",
        # The id every log line about the pickup carries: from a log line to the pickup.
        "=correlation_id",
    ]
    actions = ["rerun_assignment"]
    readonly_fields = [
        "status_badge",
        "assignment_task",
        "status_changed_at",
        "created_at",
        "updated_at",
        "correlation_id",
    ]
    fieldsets = [
        (
            "Request",
            {
                "fields": [
                    "customer",
                    "address",
                    ("latitude", "longitude"),
                    ("window_start", "window_end"),
                    "notes",
                    "contact_phone",
                    "idempotency_key",
                ]
            },
        ),
        (
            "Status",
            {"fields": ["status_badge", "vendor", "status_changed_at", "version"]},
        ),
        (
            "Timers and assignment",
            {
                "description": "While offered: when the offer is withdrawn unless accepted. "
                "While unassigned: fruitless retries so far and when the next one is due.",
                "fields": [
                    "offer_expires_at",
                    ("retry_count", "next_retry_at"),
                    "assignment_task",
                ],
            },
        ),
        (
            "Record",
            {"fields": ["vendor_position", ("created_at", "updated_at"), "correlation_id"]},
        ),
    ]
    inlines = [PickupItemInline, PickupRejectionInline, PickupTransitionInline]

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: PickupRequest):
        return render_status_badge(obj.status, obj.get_status_display())

    @admin.display(description="assignment task")
    def assignment_task(self, obj: PickupRequest):
        url = flower_task_url(obj.assignment_task_id)
        if url is None:
            return obj.assignment_task_id or "-"
        return format_html(
            '<a href="{}" target="_blank" rel="noopener" title="{}">{}</a>',
            url,
            "The task in Flower",
            obj.assignment_task_id,
        )

    def has_rerun_assignment_permission(self, request: HttpRequest) -> bool:
        # The pickup is changed through its service, so the right to change pickups is the one
        # that counts, even though this admin offers no form to change them.
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.{get_permission_codename('change', opts)}")

    @admin.action(description="Re-run assignment", permissions=["rerun_assignment"])
    def rerun_assignment(self, request: HttpRequest, queryset: QuerySet[PickupRequest]) -> None:
        """Assign each selected pending or unassigned pickup again now (see
        ``pickup_rerun_assignment``); report the others as skipped."""
        done: list[str] = []
        skipped: list[str] = []
        # The service decides under the pickup's lock; the status read here only explains a skip.
        for pickup_id, status in queryset.order_by("pk").values_list("pk", "status"):
            try:
                pickup = pickup_rerun_assignment(pickup_id=pickup_id)
            except InvalidTransition:
                skipped.append(f"#{pickup_id} ({status})")
                continue
            except NotFound:
                skipped.append(f"#{pickup_id} (gone)")
                continue
            done.append(f"#{pickup.pk} {assignment_outcome(pickup)}")
            self.log_change(request, pickup, "Re-ran the assignment.")
        if done:
            self.message_user(
                request,
                f"Assignment re-run for {_count(done)}: {_listed(done)}.",
                messages.SUCCESS,
            )
        if skipped:
            self.message_user(
                request,
                f"Skipped {_count(skipped)}, neither pending nor unassigned: {_listed(skipped)}.",
                messages.WARNING,
            )


def _count(items: list[str]) -> str:
    return f"{len(items)} pickup{'' if len(items) == 1 else 's'}"


def _listed(items: list[str], limit: int = 20) -> str:
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"


class ReceiptLineInline(ViewOnly, admin.TabularInline):
    model = ReceiptLine


@admin.register(Receipt)
class ReceiptAdmin(ViewOnly, admin.ModelAdmin):
    list_display = ["number", "pickup", "vendor_name", "total", "currency", "issued_at"]
    list_filter = ["vendor"]
    search_fields = ["pickup__id", "vendor_name"]
    inlines = [ReceiptLineInline]
