"""Input validation and output shape of notifications over REST, with the WebSocket's rules."""

from rest_framework import serializers

from notifications.kinds import KINDS
from procurement_system.serializers import (
    ASCII_DIGITS,
    MAX_ID,
    StrictQuerySerializer,
    StrictSerializer,
)

MAX_MARK_READ = 1000
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


class QueryIntegerField(serializers.IntegerField):
    """A non-negative integer in a query string: ASCII digits only, as the WebSocket's
    ``?after=`` (no sign, spaces, decimals or other scripts' digits)."""

    def to_internal_value(self, data):
        if not (isinstance(data, str) and ASCII_DIGITS.fullmatch(data)):
            self.fail("invalid")
        return super().to_internal_value(data)


class JsonBooleanField(serializers.BooleanField):
    """A JSON ``true`` or ``false``, not a string or number that DRF would read as one."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


# --- input ----------------------------------------------------------------------------------


class NotificationListQuerySerializer(StrictQuerySerializer):
    """The list's query parameters; ``cursor`` and ``page_size`` are read by the paginator."""

    after = QueryIntegerField(
        required=False,
        min_value=0,
        max_value=MAX_ID,
        help_text="Only notifications with an id above this one, oldest first (replay after a "
        "reconnect, as the WebSocket's ?after=). Without it: newest first.",
    )
    unread = serializers.BooleanField(
        required=False, default=False, help_text="true: only notifications not yet read."
    )
    cursor = serializers.CharField(
        required=False,
        max_length=200,
        help_text="Opaque position from the previous or next link of a page.",
    )
    page_size = QueryIntegerField(
        required=False,
        min_value=1,
        max_value=MAX_PAGE_SIZE,
        help_text=f"Notifications per page, 1 to {MAX_PAGE_SIZE} (default {DEFAULT_PAGE_SIZE}).",
    )


class NotificationMarkReadSerializer(StrictSerializer):
    """Exactly one of ``ids`` (some notifications) or ``all: true`` (every one)."""

    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        min_length=1,
        max_length=MAX_MARK_READ,
        required=False,
        help_text=f"1 to {MAX_MARK_READ} ids of your notifications; others are ignored.",
    )
    all = JsonBooleanField(required=False, help_text="true: mark every notification read.")

    def validate(self, attrs: dict) -> dict:
        # "all": false is the same as leaving it out.
        if attrs.get("all") is False:
            del attrs["all"]
        if ("ids" in attrs) == ("all" in attrs):
            raise serializers.ValidationError("Send ids, or all: true.")
        return attrs


# --- output (the shape of ``selectors.notification_payload``) ------------------------------


class NotificationSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="Per-user increasing id.")
    kind = serializers.ChoiceField(choices=sorted(KINDS))
    message = serializers.CharField(help_text="A text for people.")
    data = serializers.DictField(help_text="Structured details, e.g. pickup_id and status.")
    created_at = serializers.DateTimeField()
    read_at = serializers.DateTimeField(allow_null=True)


class UnreadCountSerializer(serializers.Serializer):
    unread_count = serializers.IntegerField(min_value=0)


class MarkReadResultSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(),
        required=False,
        help_text="With ids: those of the given ids that are yours, now read (ascending).",
    )
    marked_count = serializers.IntegerField(
        required=False, min_value=0, help_text="With all: how many were unread until now."
    )
    unread_count = serializers.IntegerField(min_value=0, help_text="Unread after the change.")
