"""``/api/me/``: who the caller is, in which roles, for which vendors; ``/api/vendors/``: the
vendors' public directory, a search around a point, a member's own settings, and operators'
vendor and membership management."""

import django_filters
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from procurement_system.rest import (
    AUTHENTICATED,
    PagePagination,
    StrictFilterBackend,
    error_responses,
)
from procurement_system.serializers import validated
from vendors import selectors, services
from vendors.models import Vendor
from vendors.serializers import (
    MemberAddSerializer,
    NearbyQuerySerializer,
    VendorChoiceQuerySerializer,
    VendorCreateSerializer,
    VendorNearbySerializer,
    VendorPublicSerializer,
    VendorSerializer,
    VendorSettingsSerializer,
)


class VendorRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Vendor
        fields = ["id", "name"]


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    name = serializers.CharField()
    email = serializers.EmailField()
    roles = serializers.ListField(
        child=serializers.ChoiceField(choices=["customer", "vendor_member", "operator"])
    )
    vendors = VendorRefSerializer(many=True)


class MeView(APIView):
    @extend_schema(
        summary="Who am I",
        description="The signed-in user, their roles and the vendors they act for.",
        responses={200: MeSerializer, **error_responses(*AUTHENTICATED)},
        examples=[
            OpenApiExample(
                "A vendor member",
                response_only=True,
                value={
                    "id": 3,
                    "username": "victor",
                    "name": "Victor",
                    "email": "victor@example.com",
                    "roles": ["customer", "vendor_member"],
                    "vendors": [{"id": 1, "name": "Victor Recycling"}],
                },
            )
        ],
    )
    def get(self, request: Request) -> Response:
        user = request.user
        vendors = list(Vendor.objects.filter(members=user).order_by("name"))
        roles = ["customer"]  # anyone may request a pickup
        if vendors:
            roles.append("vendor_member")
        if user.is_staff:
            roles.append("operator")
        me = {
            "id": user.pk,
            "username": user.get_username(),
            "name": user.get_full_name() or user.get_username(),
            "email": user.email,
            "roles": roles,
            "vendors": vendors,
        }
        return Response(MeSerializer(me).data)


# --- /api/vendors/ ----------------------------------------------------------------------------


class VendorFilter(django_filters.FilterSet):
    material = django_filters.CharFilter(
        field_name="materials__material_id", help_text="Only vendors collecting this material."
    )
    online = django_filters.ChoiceFilter(
        choices=[("true", "true"), ("false", "false")],
        method="filter_online",
        help_text="Only vendors taking offers now (true) or not (false).",
    )

    class Meta:
        model = Vendor
        fields = ["material", "online"]

    def filter_online(self, vendors: QuerySet[Vendor], name: str, value: str) -> QuerySet[Vendor]:
        return vendors.filter(is_online=value == "true")


class IsOperator(permissions.BasePermission):
    """Staff users: they create vendors and manage who acts for them."""

    message = "Only operators can manage vendors."

    def has_permission(self, request: Request, view) -> bool:
        return bool(request.user and request.user.is_staff)


PRICE_LIST = [
    {"material": "paper", "price_per_kg": "0.12"},
    {"material": "metal", "price_per_kg": "0.85"},
]
PUBLIC_EXAMPLE = OpenApiExample(
    "A vendor",
    response_only=True,
    value={
        "id": 2,
        "name": "Vera Metals",
        "latitude": 52.5319,
        "longitude": 13.4132,
        "service_radius_km": 10.0,
        "is_online": True,
        "materials": [
            {"material": "metal", "name": "Metal", "price_per_kg": "0.85"},
            {"material": "paper", "name": "Paper", "price_per_kg": "0.12"},
        ],
    },
)
VENDOR_EXAMPLE = OpenApiExample(
    "A vendor, as its members and operators see it",
    response_only=True,
    value={
        **PUBLIC_EXAMPLE.value,
        "is_active": True,
        "capacity": 5,
        "open_jobs": 2,
        "members": [{"id": 7, "username": "vera"}],
    },
)
NEARBY_EXAMPLE = OpenApiExample(
    "A vendor 1.11 km away",
    response_only=True,
    # The schema shows it as an item of the list.
    value={**PUBLIC_EXAMPLE.value, "distance_km": 1.11, "serves_location": True},
)


@extend_schema_view(
    list=extend_schema(
        summary="List vendors",
        description="The public directory, by name. Active vendors only; operators (staff) see "
        "inactive ones too. Never members, capacity or workload.",
        request=None,
        responses={
            200: VendorPublicSerializer(many=True),
            **error_responses("validation_error", "not_found", *AUTHENTICATED),
        },
        examples=[PUBLIC_EXAMPLE],
    ),
    retrieve=extend_schema(
        summary="One vendor",
        description="Public fields only. An inactive vendor is not_found, except for operators.",
        request=None,
        responses={200: VendorPublicSerializer, **error_responses("not_found", *AUTHENTICATED)},
        examples=[PUBLIC_EXAMPLE],
    ),
)
class VendorViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Any signed-in user reads the vendors' public directory and searches around a point;
    vendor members read and change their own vendor's settings; operators (staff) create vendors
    and manage their members."""

    serializer_class = VendorPublicSerializer
    pagination_class = PagePagination
    filter_backends = [StrictFilterBackend]
    filterset_class = VendorFilter
    lookup_value_regex = r"[0-9]{1,18}"
    operator_actions = frozenset({"create", "members", "remove_member"})

    def get_queryset(self) -> QuerySet[Vendor]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return Vendor.objects.none()
        return selectors.vendors_visible_to(user=self.request.user).order_by("name", "id")

    def get_permissions(self) -> list[permissions.BasePermission]:
        # Refused before the body is read or the vendor looked up: a non-operator always gets
        # forbidden, whatever they send.
        if self.action in self.operator_actions:
            return [permissions.IsAuthenticated(), IsOperator()]
        return super().get_permissions()

    @extend_schema(
        summary="Vendors based near a point",
        description="Active, online vendors whose base is within radius_km of (lat, lon), "
        f"nearest first, at most {selectors.NEARBY_LIMIT}. serves_location says whether the "
        "vendor's own service radius covers the point (only those get offers for pickups "
        "there).",
        parameters=[NearbyQuerySerializer],
        request=None,
        responses={
            200: VendorNearbySerializer(many=True),
            **error_responses("validation_error", *AUTHENTICATED),
        },
        examples=[NEARBY_EXAMPLE],
    )
    @action(detail=False, methods=["get"], pagination_class=None, filter_backends=[])
    def nearby(self, request: Request) -> Response:
        query = validated(NearbyQuerySerializer, request.query_params.dict())
        found = selectors.vendors_nearby(
            latitude=query["lat"],
            longitude=query["lon"],
            radius_km=query["radius_km"],
            material=query.get("material"),
        )
        return Response(VendorNearbySerializer(found, many=True).data)

    @extend_schema(
        summary="Your vendor's settings (vendor member)",
        description="Everything about the vendor you act for, including capacity, open jobs "
        "and members. Not a member of any vendor (or not of the one asked for): not_found.",
        parameters=[VendorChoiceQuerySerializer],
        request=None,
        responses={
            200: VendorSerializer,
            **error_responses("validation_error", "not_found", *AUTHENTICATED),
        },
        examples=[VENDOR_EXAMPLE],
    )
    @action(detail=False, methods=["get"], filter_backends=[])
    def me(self, request: Request) -> Response:
        return Response(VendorSerializer(self._own_vendor(request)).data)

    @extend_schema(
        summary="Change your vendor's settings (vendor member)",
        description="Any of: is_online, capacity, service_radius_km, materials (the whole price "
        "list, replaced). Capacity may go below the open jobs: they stay, and new offers wait "
        "until enough of them end.",
        parameters=[VendorChoiceQuerySerializer],
        request=VendorSettingsSerializer,
        responses={
            200: VendorSerializer,
            **error_responses("validation_error", "bad_request", "not_found", *AUTHENTICATED),
        },
        examples=[
            OpenApiExample(
                "Offline, with a new price list",
                request_only=True,
                value={"is_online": False, "capacity": 3, "materials": PRICE_LIST},
            ),
            VENDOR_EXAMPLE,
        ],
    )
    @me.mapping.patch
    def me_update(self, request: Request) -> Response:
        vendor = self._own_vendor(request)
        changes = validated(VendorSettingsSerializer, request.data)
        services.vendor_update_settings(vendor_id=vendor.pk, by=request.user, **changes)
        return Response(self._represent(vendor.pk))

    @extend_schema(
        summary="Create a vendor (operator)",
        description="Without members; add them with POST /api/vendors/{id}/members/.",
        request=VendorCreateSerializer,
        responses={
            201: VendorSerializer,
            **error_responses("validation_error", "bad_request", "forbidden", *AUTHENTICATED),
        },
        examples=[
            OpenApiExample(
                "A vendor in Berlin",
                request_only=True,
                value={
                    "name": "Vera Metals",
                    "latitude": 52.5319,
                    "longitude": 13.4132,
                    "service_radius_km": 10,
                    "capacity": 5,
                    "is_active": True,
                    "is_online": True,
                    "materials": PRICE_LIST,
                },
            ),
            VENDOR_EXAMPLE,
        ],
    )
    def create(self, request: Request) -> Response:
        fields = validated(VendorCreateSerializer, request.data)
        vendor = services.vendor_create(by=request.user, **fields)
        return Response(self._represent(vendor.pk), status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Add a member to a vendor (operator)",
        description="An existing user, by username, starts acting for the vendor (offers, "
        "jobs, settings). Adding a member twice changes nothing.",
        request=MemberAddSerializer,
        responses={
            200: VendorSerializer,
            **error_responses(
                "validation_error", "bad_request", "forbidden", "not_found", *AUTHENTICATED
            ),
        },
        examples=[
            OpenApiExample("A user", request_only=True, value={"username": "vera"}),
            VENDOR_EXAMPLE,
        ],
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def members(self, request: Request, pk: str) -> Response:
        username = validated(MemberAddSerializer, request.data)["username"]
        services.vendor_add_member(vendor_id=int(pk), by=request.user, username=username)
        return Response(self._represent(int(pk)))

    @extend_schema(
        summary="Remove a member from a vendor (operator)",
        description="The user stops acting for the vendor; jobs the vendor holds stay with it. "
        "A user who is not a member is not_found.",
        parameters=[OpenApiParameter("user_id", OpenApiTypes.INT, OpenApiParameter.PATH)],
        request=None,
        responses={204: None, **error_responses("forbidden", "not_found", *AUTHENTICATED)},
    )
    @action(
        detail=True,
        methods=["delete"],
        url_path=r"members/(?P<user_id>[0-9]{1,18})",
        url_name="member",
        filter_backends=[],
    )
    def remove_member(self, request: Request, pk: str, user_id: str) -> Response:
        services.vendor_remove_member(vendor_id=int(pk), by=request.user, user_id=int(user_id))
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _own_vendor(self, request: Request) -> Vendor:
        query = validated(VendorChoiceQuerySerializer, request.query_params.dict())
        return selectors.vendor_of_member(user=request.user, vendor_id=query.get("vendor"))

    def _represent(self, vendor_id: int) -> dict:
        return VendorSerializer(selectors.vendor_detail(vendor_id=vendor_id)).data
