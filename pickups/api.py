"""``/api/pickups/``: the WebSocket's pickup actions over HTTP, through the same services."""

from datetime import UTC

import django_filters
from django import forms
from django.db.models import QuerySet
from django_filters.fields import IsoDateTimeField
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from pickups import receipts, selectors, services
from pickups.models import STATUS_CHOICES, PickupRequest
from pickups.serializers import (
    PickupChangeSerializer,
    PickupCreateSerializer,
    PickupSerializer,
    ReasonSerializer,
    ReceiptSerializer,
    VendorStepSerializer,
)
from procurement_system.errors import ValidationError
from procurement_system.rest import (
    AUTHENTICATED,
    PagePagination,
    StrictFilterBackend,
    error_responses,
)
from procurement_system.serializers import validated

IDEMPOTENCY_HEADER = "Idempotency-Key"


class UtcDateTimeField(IsoDateTimeField):
    """An ISO 8601 moment, as UTC: any offset ISO 8601 allows (up to ±23:59) reaches the
    database as UTC, since PostgreSQL takes offsets of at most ±15:59."""

    def to_python(self, value):
        moment = super().to_python(value)
        if moment is None:
            return None
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("Out of the range of dates.") from None


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


class PickupFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=STATUS_CHOICES)
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = PickupRequest
        fields = ["status", "created_after", "created_before"]


CREATE_EXAMPLE = OpenApiExample(
    "Two materials",
    request_only=True,
    value={
        "address": "Alexanderplatz 1, 10178 Berlin",
        "latitude": 52.5219,
        "longitude": 13.4132,
        "window_start": "2030-05-04T09:00:00Z",
        "window_end": "2030-05-04T12:00:00Z",
        "items": [
            {"material": "paper", "estimated_kg": "40"},
            {"material": "metal", "estimated_kg": "12.5"},
        ],
        "notes": "Blue door, ground floor",
        "contact_phone": "+49 30 1234567",
    },
)
PICKUP_EXAMPLE = OpenApiExample(
    "An accepted pickup, as its customer sees it",
    response_only=True,
    value={
        "id": 7,
        "status": "accepted",
        "address": "Alexanderplatz 1, 10178 Berlin",
        "latitude": 52.5219,
        "longitude": 13.4132,
        "window_start": "2030-05-04T09:00:00Z",
        "window_end": "2030-05-04T12:00:00Z",
        "notes": "Blue door, ground floor",
        "items": [{"material": "paper", "estimated_kg": "40.00", "actual_kg": None}],
        "vendor": {"id": 2, "name": "Vera Metals"},
        "customer": {
            "id": 1,
            "name": "Alice Customer",
            "email": "alice@example.com",
            "phone": "+49 30 1234567",
        },
        "rejections": [
            {
                "vendor": {"id": 1, "name": "Victor Recycling"},
                "role": "vendor",
                "reason": "Truck is full today",
                "created_at": "2030-05-01T08:00:02Z",
            }
        ],
        "history": [
            {"event": "create", "status": "pending", "at": "2030-05-01T08:00:00Z"},
            {"event": "assign", "status": "offered", "at": "2030-05-01T08:00:00Z"},
            {"event": "vendor_reject", "status": "pending", "at": "2030-05-01T08:00:02Z"},
            {"event": "assign", "status": "offered", "at": "2030-05-01T08:00:02Z"},
            {"event": "accept", "status": "accepted", "at": "2030-05-01T08:01:10Z"},
        ],
        "idempotency_key": "order-4711",
        "assignment_task_id": "2f1c9a4e-7b1d-4c1e-9a53-0d7b8e6f4a21",
        "created_at": "2030-05-01T08:00:00Z",
        "updated_at": "2030-05-01T08:01:10Z",
        "status_changed_at": "2030-05-01T08:01:10Z",
    },
)
CREATED_EXAMPLE = OpenApiExample(
    "Just created",
    response_only=True,
    status_codes=["201"],
    value={
        **PICKUP_EXAMPLE.value,
        "status": "pending",
        "vendor": None,
        "rejections": [],
        "history": PICKUP_EXAMPLE.value["history"][:1],
        "assignment_task_id": "2f1c9a4e-7b1d-4c1e-9a53-0d7b8e6f4a21",
        "updated_at": "2030-05-01T08:00:00Z",
        "status_changed_at": "2030-05-01T08:00:00Z",
    },
)
CHANGE = error_responses(
    "validation_error",
    "bad_request",
    "forbidden",
    "not_found",
    "invalid_transition",
    *AUTHENTICATED,
)


@extend_schema_view(
    list=extend_schema(
        summary="List the pickups you may see",
        description="Newest first. Customers see theirs, vendor members those offered to or "
        "held by their vendor, operators all.",
        responses={
            200: PickupSerializer(many=True),
            **error_responses("validation_error", "not_found", *AUTHENTICATED),
        },
        examples=[PICKUP_EXAMPLE],
    ),
    retrieve=extend_schema(
        summary="One pickup",
        responses={200: PickupSerializer, **error_responses("not_found", *AUTHENTICATED)},
        examples=[PICKUP_EXAMPLE],
    ),
)
class PickupViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Customers create and follow their pickups; vendor members work the ones offered to them;
    operators (staff) read every pickup."""

    serializer_class = PickupSerializer
    pagination_class = PagePagination
    filter_backends = [StrictFilterBackend]
    filterset_class = PickupFilter
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self) -> QuerySet[PickupRequest]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return PickupRequest.objects.none()
        return selectors.pickups_visible_to(user=self.request.user).order_by("-created_at", "-id")

    def get_serializer_context(self) -> dict:
        return {**super().get_serializer_context(), "viewer": self.request.user}

    @extend_schema(
        summary="Request a pickup",
        description="Stores the request and queues its assignment to the nearest eligible "
        "vendor; the offer follows within moments. The same Idempotency-Key answers 201 again "
        "with the same pickup and the header Idempotent-Replayed: true.",
        request=PickupCreateSerializer,
        parameters=[
            OpenApiParameter(
                IDEMPOTENCY_HEADER,
                {"type": "string", "minLength": 1, "maxLength": 100},
                OpenApiParameter.HEADER,
                description="1 to 100 characters, unique per customer.",
            )
        ],
        responses={
            201: PickupSerializer,
            **error_responses("validation_error", "bad_request", *AUTHENTICATED),
        },
        examples=[CREATE_EXAMPLE, CREATED_EXAMPLE],
    )
    def create(self, request: Request) -> Response:
        fields = validated(PickupCreateSerializer, request.data)
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is not None:
            if not 0 < len(key) <= 100:
                raise ValidationError(errors={IDEMPOTENCY_HEADER: ["1 to 100 characters."]})
        pickup, created = services.pickup_create(
            customer=request.user, idempotency_key=key, **fields
        )
        # The same key answers 201 again with that pickup as it is now, marked as a replay; the
        # body of a replay is not compared with the first one.
        headers = {} if created else {"Idempotent-Replayed": "true"}
        return Response(self._represent(pickup), status=status.HTTP_201_CREATED, headers=headers)

    @extend_schema(
        summary="Edit the request (customer)",
        description="Address, notes, phone and window until the vendor sets off; location and "
        "items only while no vendor holds the pickup.",
        request=PickupChangeSerializer,
        responses={200: PickupSerializer, **CHANGE},
        examples=[
            OpenApiExample("New notes", request_only=True, value={"notes": "Ring twice"}),
            PICKUP_EXAMPLE,
        ],
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        changes = validated(PickupChangeSerializer, request.data)
        pickup = services.pickup_update_details(
            pickup_id=int(pk), by=request.user, changes=dict(changes)
        )
        return Response(self._represent(pickup))

    @extend_schema(
        summary="Accept an offer (vendor member)",
        request=None,
        responses={200: PickupSerializer, **CHANGE},
        examples=[PICKUP_EXAMPLE],
    )
    @action(detail=True, methods=["post"])
    def accept(self, request: Request, pk: str) -> Response:
        return Response(self._represent(services.pickup_accept(pickup_id=int(pk), by=request.user)))

    @extend_schema(
        summary="Decline the offer (vendor member) or release the accepted vendor (customer)",
        request=ReasonSerializer,
        responses={200: PickupSerializer, **CHANGE},
        examples=[
            OpenApiExample("Reason", request_only=True, value={"reason": "Truck full"}),
            PICKUP_EXAMPLE,
        ],
    )
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str) -> Response:
        reason = validated(ReasonSerializer, request.data)["reason"]
        pickup = services.pickup_reject(pickup_id=int(pk), by=request.user, reason=reason)
        return Response(self._represent(pickup))

    @extend_schema(
        summary="Cancel the request (customer)",
        request=ReasonSerializer,
        responses={200: PickupSerializer, **CHANGE},
        examples=[
            OpenApiExample("Reason", request_only=True, value={"reason": "Sold it"}),
            PICKUP_EXAMPLE,
        ],
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        reason = validated(ReasonSerializer, request.data)["reason"]
        pickup = services.pickup_cancel(pickup_id=int(pk), by=request.user, reason=reason)
        return Response(self._represent(pickup))

    @extend_schema(
        summary="Move the job on (vendor member): en_route, picked_up, completed",
        request=VendorStepSerializer,
        responses={200: PickupSerializer, **CHANGE},
        examples=[
            OpenApiExample(
                "Picked up, with actual weights",
                request_only=True,
                value={
                    "status": "picked_up",
                    "items": [{"material": "paper", "actual_kg": "37.4"}],
                },
            ),
            PICKUP_EXAMPLE,
        ],
    )
    @action(detail=True, methods=["post"])
    def status(self, request: Request, pk: str) -> Response:
        step = validated(VendorStepSerializer, request.data)
        pickup = services.pickup_advance(
            pickup_id=int(pk),
            by=request.user,
            status=step["status"],
            actual_weights=step.get("items"),
        )
        return Response(self._represent(pickup))

    @extend_schema(
        summary="The receipt of a completed pickup",
        description="Issued moments after the pickup is completed (the notification "
        "``receipt.issued`` says when); ``not_found`` until then. The printable page is "
        "``/pickups/{id}/receipt/`` (signed in with a session).",
        responses={200: ReceiptSerializer, **error_responses("not_found", *AUTHENTICATED)},
        examples=[
            OpenApiExample(
                "Two materials",
                response_only=True,
                value={
                    "number": "R-000007",
                    "pickup_id": 7,
                    "vendor": {"id": 2, "name": "Vera Metals"},
                    "currency": "EUR",
                    "lines": [
                        {
                            "material": "paper",
                            "material_name": "Paper",
                            "estimated_kg": "40.00",
                            "actual_kg": "37.40",
                            "price_per_kg": "0.12",
                            "amount": "4.49",
                        },
                        {
                            "material": "metal",
                            "material_name": "Metal",
                            "estimated_kg": "12.50",
                            "actual_kg": "13.00",
                            "price_per_kg": "0.80",
                            "amount": "10.40",
                        },
                    ],
                    "total_kg": "50.40",
                    "total": "14.89",
                    "issued_at": "2030-05-04T10:42:01Z",
                },
            )
        ],
    )
    @action(detail=True, methods=["get"])
    def receipt(self, request: Request, pk: str) -> Response:
        return Response(
            ReceiptSerializer(receipts.receipt_get(user=request.user, pickup_id=int(pk))).data
        )

    def _represent(self, pickup: PickupRequest) -> dict:
        detail = selectors.pickup_detail(pickup_id=pickup.pk)
        return PickupSerializer(detail, context=self.get_serializer_context()).data
