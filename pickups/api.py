"""``/api/pickups/``: the WebSocket's pickup actions over HTTP, through the same services."""

import django_filters
from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from pickups import selectors, services
from pickups.models import STATUS_CHOICES, PickupRequest
from pickups.serializers import (
    PickupChangeSerializer,
    PickupCreateSerializer,
    PickupSerializer,
    ReasonSerializer,
    VendorStepSerializer,
)
from procurement_system.errors import ValidationError
from procurement_system.rest import PagePagination
from procurement_system.serializers import validated

IDEMPOTENCY_HEADER = "Idempotency-Key"


class PickupFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=STATUS_CHOICES)
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = PickupRequest
        fields = ["status", "created_after", "created_before"]


class PickupViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Customers create and follow their pickups; vendor members work the ones offered to them;
    operators (staff) read every pickup."""

    serializer_class = PickupSerializer
    pagination_class = PagePagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = PickupFilter
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self) -> QuerySet[PickupRequest]:
        return selectors.pickups_visible_to(user=self.request.user).order_by("-created_at", "-id")

    def get_serializer_context(self) -> dict:
        return {**super().get_serializer_context(), "viewer": self.request.user}

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

    def partial_update(self, request: Request, pk: str) -> Response:
        changes = validated(PickupChangeSerializer, request.data)
        pickup = services.pickup_update_details(
            pickup_id=int(pk), by=request.user, changes=dict(changes)
        )
        return Response(self._represent(pickup))

    @action(detail=True, methods=["post"])
    def accept(self, request: Request, pk: str) -> Response:
        return Response(self._represent(services.pickup_accept(pickup_id=int(pk), by=request.user)))

    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str) -> Response:
        reason = validated(ReasonSerializer, request.data)["reason"]
        pickup = services.pickup_reject(pickup_id=int(pk), by=request.user, reason=reason)
        return Response(self._represent(pickup))

    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        reason = validated(ReasonSerializer, request.data)["reason"]
        pickup = services.pickup_cancel(pickup_id=int(pk), by=request.user, reason=reason)
        return Response(self._represent(pickup))

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

    def _represent(self, pickup: PickupRequest) -> dict:
        detail = selectors.pickup_detail(pickup_id=pickup.pk)
        return PickupSerializer(detail, context=self.get_serializer_context()).data
