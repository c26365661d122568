"""Input validation and output shape of vendors, for the REST API."""

from decimal import Decimal

from django.contrib.auth import get_user_model
from rest_framework import serializers

from procurement_system.serializers import MAX_ID, StrictQuerySerializer, StrictSerializer
from vendors.models import Vendor, VendorMaterial
from vendors.selectors import NearbyVendor
from vendors.services import (
    CAPACITY_MAX,
    MAX_MATERIALS,
    RADIUS_MAX_KM,
    RADIUS_MIN_KM,
    PriceInput,
)

NEARBY_MAX_RADIUS_KM = 100.0

# --- input ----------------------------------------------------------------------------------


class PriceInputSerializer(StrictSerializer):
    material = serializers.SlugField(max_length=40, help_text="A material code, e.g. paper.")
    price_per_kg = serializers.DecimalField(
        max_digits=10, decimal_places=2, min_value=Decimal("0"), help_text="At most 2 decimals."
    )


def price_list_field(**kwargs) -> serializers.ListField:
    return serializers.ListField(
        child=PriceInputSerializer(),
        max_length=MAX_MATERIALS,
        help_text="The whole price list; it replaces the current one. Each material once.",
        **kwargs,
    )


def to_price_list(prices: list[dict]) -> list[PriceInput]:
    if len({p["material"] for p in prices}) != len(prices):
        raise serializers.ValidationError("Each material may appear only once.")
    return [PriceInput(p["material"], p["price_per_kg"]) for p in prices]


class VendorSettingsSerializer(StrictSerializer):
    """What a vendor member may change: any subset."""

    is_online = serializers.BooleanField(required=False, help_text="Taking offers now.")
    capacity = serializers.IntegerField(
        min_value=0,
        max_value=CAPACITY_MAX,
        required=False,
        help_text="Jobs (offered or in progress) at once. Lowering it below the open jobs keeps "
        "them; new offers wait until enough of them end.",
    )
    service_radius_km = serializers.FloatField(
        min_value=RADIUS_MIN_KM, max_value=RADIUS_MAX_KM, required=False
    )
    materials = price_list_field(required=False)

    def validate_materials(self, prices: list[dict]) -> list[PriceInput]:
        return to_price_list(prices)


class VendorCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    latitude = serializers.FloatField(min_value=-90, max_value=90)
    longitude = serializers.FloatField(min_value=-180, max_value=180)
    service_radius_km = serializers.FloatField(min_value=RADIUS_MIN_KM, max_value=RADIUS_MAX_KM)
    capacity = serializers.IntegerField(min_value=0, max_value=CAPACITY_MAX, default=5)
    is_active = serializers.BooleanField(default=True)
    is_online = serializers.BooleanField(default=True)
    materials = price_list_field(default=list)

    def validate_materials(self, prices: list[dict]) -> list[PriceInput]:
        return to_price_list(prices)


class MemberAddSerializer(StrictSerializer):
    username = serializers.CharField(max_length=150)


class NearbySerializer(StrictSerializer):
    """Where to look for vendors: the WebSocket's ``nearby`` action (JSON numbers)."""

    lat = serializers.FloatField(min_value=-90, max_value=90, help_text="Latitude of the point.")
    lon = serializers.FloatField(min_value=-180, max_value=180, help_text="Longitude of the point.")
    radius_km = serializers.FloatField(
        min_value=0,  # and not 0 itself: see validate_radius_km
        max_value=NEARBY_MAX_RADIUS_KM,
        help_text=f"Search radius around the point: more than 0, at most {NEARBY_MAX_RADIUS_KM:g}.",
    )
    material = serializers.SlugField(
        max_length=40, required=False, help_text="Only vendors collecting this material."
    )

    def validate_radius_km(self, value: float) -> float:
        if value <= 0:
            raise serializers.ValidationError("Ensure this value is greater than 0.")
        return value


class NearbyQuerySerializer(NearbySerializer):
    """The same, as the query string of ``GET /api/vendors/nearby/``."""

    json_types = False


class VendorChoiceQuerySerializer(StrictQuerySerializer):
    vendor = serializers.IntegerField(
        min_value=1,
        max_value=MAX_ID,
        required=False,
        help_text="For a member of several vendors: which one (default: the first by name).",
    )


# --- output ---------------------------------------------------------------------------------


class VendorMaterialSerializer(serializers.ModelSerializer):
    material = serializers.CharField(source="material_id")
    name = serializers.CharField(source="material.name")

    class Meta:
        model = VendorMaterial
        fields = ["material", "name", "price_per_kg"]
        read_only_fields = fields


PUBLIC_FIELDS = [
    "id",
    "name",
    "latitude",
    "longitude",
    "service_radius_km",
    "is_online",
    "materials",
]


class VendorPublicSerializer(serializers.ModelSerializer):
    """What any signed-in user may know about a vendor: never its members or its workload."""

    materials = VendorMaterialSerializer(many=True, read_only=True)

    class Meta:
        model = Vendor
        fields = PUBLIC_FIELDS
        read_only_fields = fields


class MemberSerializer(serializers.ModelSerializer):
    class Meta:
        model = get_user_model()
        fields = ["id", "username"]
        read_only_fields = fields


class VendorSerializer(serializers.ModelSerializer):
    """The whole vendor, for its members and operators."""

    materials = VendorMaterialSerializer(many=True, read_only=True)
    members = MemberSerializer(many=True, read_only=True)

    class Meta:
        model = Vendor
        fields = [*PUBLIC_FIELDS, "is_active", "capacity", "open_jobs", "members"]
        read_only_fields = fields


class VendorNearbySerializer(serializers.Serializer):
    """A vendor's public fields, its distance from the point, and whether it serves there."""

    id = serializers.IntegerField(source="vendor.id")
    name = serializers.CharField(source="vendor.name")
    latitude = serializers.FloatField(source="vendor.latitude")
    longitude = serializers.FloatField(source="vendor.longitude")
    service_radius_km = serializers.FloatField(source="vendor.service_radius_km")
    is_online = serializers.BooleanField(source="vendor.is_online")
    materials = VendorMaterialSerializer(source="vendor.materials.all", many=True)
    distance_km = serializers.SerializerMethodField(help_text="From the point, to 0.01 km.")
    serves_location = serializers.BooleanField(
        help_text="The vendor's own service radius covers the point."
    )

    def get_distance_km(self, item: NearbyVendor) -> float:
        return round(item.distance_km, 2)
