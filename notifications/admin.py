from django.contrib import admin

from notifications.models import Notification


class ReadFilter(admin.SimpleListFilter):
    """Whether the recipient has read the notification (``read_at`` set)."""

    title = "read"
    parameter_name = "read"

    def lookups(self, request, model_admin):
        return [("yes", "Read"), ("no", "Unread")]

    def queryset(self, request, queryset):
        match self.value():
            case "yes":
                return queryset.filter(read_at__isnull=False)
            case "no":
                return queryset.filter(read_at__isnull=True)
        return queryset


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """What each user was told, for operators to look up. Only ``read_at`` may be changed: a
    notification is numbered per user under a lock and pushed to the user's sockets by the
    notification services, which an edit or an addition here would bypass."""

    list_display = ["id", "recipient", "seq", "kind", "message", "created_at", "read_at"]
    list_select_related = ["recipient"]
    list_filter = ["kind", ReadFilter]
    date_hierarchy = "created_at"
    search_fields = ["=id", "=seq", "recipient__username", "message"]
    readonly_fields = [
        "recipient",
        "seq",
        "kind",
        "message",
        "data",
        "event_key",
        "created_at",
    ]

    def has_add_permission(self, request, obj=None) -> bool:
        # The form could not make one anyway: every field but read_at is read-only.
        return False
