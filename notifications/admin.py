from django.contrib import admin

from notifications.models import Notification


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["recipient", "seq", "kind", "message", "created_at", "read_at"]
    list_filter = ["kind"]
    search_fields = ["recipient__username", "message"]
    readonly_fields = ["recipient", "seq", "kind", "message", "data", "event_key", "created_at"]
