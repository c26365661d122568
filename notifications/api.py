"""``/api/notifications/``: a user's notifications over HTTP, with the WebSocket's semantics.

Ids are the per-user numbers (``seq``); a user only ever reaches their own notifications.
"""

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound as DrfNotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from notifications import selectors, services
from notifications.models import Notification
from notifications.serializers import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    MarkReadResultSerializer,
    NotificationListQuerySerializer,
    NotificationMarkReadSerializer,
    NotificationSerializer,
    UnreadCountSerializer,
)
from procurement_system.errors import ValidationError
from procurement_system.rest import AUTHENTICATED, error_responses
from procurement_system.serializers import MAX_ID, validated, whole_number

EXAMPLE_URL = "https://pickups.example.com/api/notifications/"


def invalid_cursor() -> ValidationError:
    return ValidationError(errors={"cursor": ["Invalid cursor."]})


class NotificationCursorPagination(CursorPagination):
    """Cursor pages over ``seq`` in the direction the selector ordered the notifications.

    The cursor holds only a position and direction; the next and previous links keep the
    request's other parameters (``after``, ``unread``, ``page_size``), so a link continues in the
    same order and filter as the page it came from.
    """

    ordering = "-seq"
    page_size = DEFAULT_PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def get_ordering(self, request: Request, queryset: QuerySet, view) -> tuple[str, ...]:
        # Newest first, or oldest first after a position: the selector's decision, not ours.
        ordering = tuple(queryset.query.order_by) or (self.ordering,)
        assert ordering in {("seq",), ("-seq",)}, ordering
        return ordering

    def get_paginated_response_schema(self, schema: dict) -> dict:
        paginated = super().get_paginated_response_schema(schema)
        links = paginated["properties"]
        links["next"]["example"] = f"{EXAMPLE_URL}?cursor=cD00MQ%3D%3D"
        links["previous"]["example"] = f"{EXAMPLE_URL}?cursor=cj0xJnA9NDI%3D"
        return paginated

    def decode_cursor(self, request: Request) -> Cursor | None:
        # DRF answers a malformed cursor with 404 and passes any position to the database; a
        # cursor is a parameter like the others, so a bad one is a validation_error.
        try:
            cursor = super().decode_cursor(request)
        except DrfNotFound:
            raise invalid_cursor() from None
        if cursor is not None and cursor.position is not None:
            if (whole_number(cursor.position) or 0) > MAX_ID or whole_number(
                cursor.position
            ) is None:
                raise invalid_cursor()
        return cursor


def single_query_params(request: Request) -> dict[str, str]:
    """The query parameters, each given at most once (a repeated one is ambiguous)."""
    repeated = sorted(key for key, values in request.query_params.lists() if len(values) > 1)
    if repeated:
        raise ValidationError(errors={key: ["Give this parameter once."] for key in repeated})
    return request.query_params.dict()


NOTIFICATION_EXAMPLE = {
    "id": 42,
    "kind": "pickup.accepted",
    "message": "Vera Metals accepted your pickup of 40.00 kg paper.",
    "data": {"pickup_id": 7, "status": "accepted", "version": 5},
    "created_at": "2030-05-01T08:01:10.123456+00:00",
    "read_at": None,
}


class NotificationViewSet(viewsets.GenericViewSet):
    """The signed-in user's notifications: list and replay, unread count, mark read, one."""

    serializer_class = NotificationSerializer
    pagination_class = NotificationCursorPagination
    lookup_field = "seq"
    lookup_url_kwarg = "id"
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self) -> QuerySet[Notification]:
        # Every read goes through the selectors with the caller's id; this only tells the schema
        # generator which model the {id} path parameter belongs to.
        return Notification.objects.none()

    @extend_schema(
        summary="List your notifications",
        description="Newest first, in cursor pages: follow ``next`` until it is null. With "
        "``after=<id>``, only notifications numbered above it, oldest first: the WebSocket's "
        "replay, for a client that was away (its ``next`` links keep that order). "
        "``unread=true`` leaves out those already read. Unknown or repeated parameters are "
        "refused.",
        parameters=[NotificationListQuerySerializer],
        responses={
            200: NotificationSerializer(many=True),
            **error_responses("validation_error", *AUTHENTICATED),
        },
        examples=[
            OpenApiExample(
                "A page, newest first",
                response_only=True,
                value=NOTIFICATION_EXAMPLE,
            )
        ],
    )
    def list(self, request: Request) -> Response:
        params = validated(NotificationListQuerySerializer, single_query_params(request))
        notifications = selectors.notification_list(
            user_id=request.user.pk, after=params.get("after"), unread_only=params["unread"]
        )
        page = self.paginate_queryset(notifications)
        return self.get_paginated_response([selectors.notification_payload(n) for n in page])

    @extend_schema(
        summary="One of your notifications",
        description="By its per-user id; another user's notification is not found.",
        responses={200: NotificationSerializer, **error_responses("not_found", *AUTHENTICATED)},
        examples=[OpenApiExample("Accepted", response_only=True, value=NOTIFICATION_EXAMPLE)],
    )
    def retrieve(self, request: Request, id: str) -> Response:
        notification = selectors.notification_get(user_id=request.user.pk, notification_id=int(id))
        return Response(selectors.notification_payload(notification))

    @extend_schema(
        summary="How many of your notifications are unread",
        description="The number a badge shows; the WebSocket's mark_read answers it too.",
        responses={200: UnreadCountSerializer, **error_responses(*AUTHENTICATED)},
        examples=[OpenApiExample("Three", response_only=True, value={"unread_count": 3})],
    )
    @action(detail=False, methods=["get"], url_path="unread-count")
    def unread_count(self, request: Request) -> Response:
        return Response(
            {"unread_count": selectors.notification_unread_count(user_id=request.user.pk)}
        )

    @extend_schema(
        summary="Mark notifications read",
        description="``ids``: those of them that are yours are marked read (ids that are not "
        "yours are ignored) and returned, as the WebSocket's ``mark_read`` does. ``all: true``: "
        "every notification of yours; answers how many were unread. Both answer the unread "
        "count after the change.",
        request=NotificationMarkReadSerializer,
        responses={
            200: MarkReadResultSerializer,
            **error_responses("validation_error", "bad_request", *AUTHENTICATED),
        },
        examples=[
            OpenApiExample("Some", request_only=True, value={"ids": [40, 41, 42]}),
            OpenApiExample("All", request_only=True, value={"all": True}),
            OpenApiExample(
                "Some marked", response_only=True, value={"ids": [40, 41, 42], "unread_count": 2}
            ),
            OpenApiExample(
                "All marked", response_only=True, value={"marked_count": 5, "unread_count": 0}
            ),
        ],
    )
    @action(detail=False, methods=["post"], url_path="mark-read")
    def mark_read(self, request: Request) -> Response:
        fields = validated(NotificationMarkReadSerializer, request.data)
        user_id = request.user.pk
        if "ids" in fields:
            result = {"ids": services.notifications_mark_read(user_id=user_id, ids=fields["ids"])}
        else:
            result = {"marked_count": services.notifications_mark_all_read(user_id=user_id)}
        result["unread_count"] = selectors.notification_unread_count(user_id=user_id)
        return Response(result)
