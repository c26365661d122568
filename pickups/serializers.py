"""Input validation and output shape of pickups, shared by the WebSocket consumer and REST."""

from decimal import Decimal

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from pickups.models import PickupRejection, PickupRequest, PickupTransition, Receipt, ReceiptLine
from pickups.services import ItemInput
from pickups.transitions import VENDOR_HELD, VENDOR_STEPS, Status
from procurement_system.serializers import MAX_ID, StrictSerializer

MAX_KG = Decimal("100000")


class ItemInputSerializer(StrictSerializer):
    material = serializers.SlugField(max_length=40)
    estimated_kg = serializers.DecimalField(
        max_digits=9, decimal_places=2, min_value=Decimal("0.01"), max_value=MAX_KG
    )


class PickupCreateSerializer(StrictSerializer):
    address = serializers.CharField(max_length=500)
    latitude = serializers.FloatField(min_value=-90, max_value=90)
    longitude = serializers.FloatField(min_value=-180, max_value=180)
    window_start = serializers.DateTimeField()
    window_end = serializers.DateTimeField()
    items = serializers.ListField(
        child=ItemInputSerializer(), min_length=1, max_length=settings.PICKUP_MAX_ITEMS
    )
    notes = serializers.CharField(max_length=2000, allow_blank=True, required=False, default="")
    contact_phone = serializers.RegexField(
        r"^\+?[0-9 ()\-]{3,32}$", max_length=32, allow_blank=True, required=False, default=""
    )

    def validate_items(self, items: list[dict]) -> list[ItemInput]:
        # A partial update (PATCH) replaces the whole list, so every item must be complete.
        if any(set(i) != {"material", "estimated_kg"} for i in items):
            raise serializers.ValidationError("Each item needs material and estimated_kg.")
        return [ItemInput(i["material"], i["estimated_kg"]) for i in items]


class PickupChangeSerializer(PickupCreateSerializer):
    """The customer's edit: any subset of the create fields."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("partial", True)
        super().__init__(*args, **kwargs)


class ActualWeightSerializer(StrictSerializer):
    material = serializers.SlugField(max_length=40)
    actual_kg = serializers.DecimalField(
        max_digits=9, decimal_places=2, min_value=Decimal("0"), max_value=MAX_KG
    )


class VendorStepSerializer(StrictSerializer):
    status = serializers.ChoiceField(choices=[s.value for s in VENDOR_STEPS])
    items = ActualWeightSerializer(many=True, required=False, max_length=settings.PICKUP_MAX_ITEMS)

    def validate_items(self, items: list[dict]) -> dict[str, Decimal]:
        weights = {i["material"]: i["actual_kg"] for i in items}
        if len(weights) != len(items):
            raise serializers.ValidationError("Each material may appear only once.")
        return weights


class ReasonSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=500, allow_blank=True, required=False, default="")


class PickupIdSerializer(serializers.Serializer):
    pickup_id = serializers.IntegerField(min_value=1, max_value=MAX_ID)


class LocationInputSerializer(StrictSerializer):
    """A vendor member's position on the way to a pickup (the ``location`` action)."""

    lat = serializers.FloatField(min_value=-90, max_value=90)
    lon = serializers.FloatField(min_value=-180, max_value=180)
    heading = serializers.FloatField(
        min_value=0, max_value=360, required=False, allow_null=True, default=None
    )
    speed = serializers.FloatField(
        min_value=0, max_value=150, required=False, allow_null=True, default=None
    )


# --- output ---------------------------------------------------------------------------------


class PickupItemSerializer(serializers.Serializer):
    material = serializers.CharField(source="material_id")
    estimated_kg = serializers.DecimalField(max_digits=9, decimal_places=2)
    actual_kg = serializers.DecimalField(max_digits=9, decimal_places=2, allow_null=True)
    price_per_kg = serializers.DecimalField(
        max_digits=10,
        decimal_places=2,
        allow_null=True,
        help_text="Quoted by the vendor the pickup was last offered to; null before any offer.",
    )


class ReceiptLineSerializer(serializers.ModelSerializer):
    material = serializers.CharField(source="material_id")

    class Meta:
        model = ReceiptLine
        fields = [
            "material",
            "material_name",
            "estimated_kg",
            "actual_kg",
            "price_per_kg",
            "amount",
        ]
        read_only_fields = fields


class ReceiptSerializer(serializers.ModelSerializer):
    number = serializers.CharField(read_only=True)
    pickup_id = serializers.IntegerField(read_only=True)
    vendor = serializers.SerializerMethodField()
    lines = ReceiptLineSerializer(many=True, read_only=True)

    class Meta:
        model = Receipt
        fields = [
            "number",
            "pickup_id",
            "vendor",
            "currency",
            "lines",
            "total_kg",
            "total",
            "issued_at",
        ]
        read_only_fields = fields

    def get_vendor(self, receipt: Receipt) -> dict:
        return {"id": receipt.vendor_id, "name": receipt.vendor_name}


class PositionSerializer(serializers.Serializer):
    """The vendor's last reported position (live ones arrive as ``vendor.location`` events)."""

    lat = serializers.FloatField()
    lon = serializers.FloatField()
    heading = serializers.FloatField(allow_null=True)
    speed = serializers.FloatField(allow_null=True, help_text="Metres per second.")
    at = serializers.DateTimeField()


class RejectionSerializer(serializers.ModelSerializer):
    vendor = serializers.SerializerMethodField()

    class Meta:
        model = PickupRejection
        fields = ["vendor", "role", "reason", "created_at"]

    def get_vendor(self, rejection: PickupRejection) -> dict:
        return {"id": rejection.vendor_id, "name": rejection.vendor.name}


class TransitionSerializer(serializers.ModelSerializer):
    status = serializers.CharField(source="to_status")
    at = serializers.DateTimeField(source="created_at")

    class Meta:
        model = PickupTransition
        fields = ["event", "status", "at"]


class PickupSerializer(serializers.ModelSerializer):
    """A pickup as ``context["viewer"]`` may see it.

    The customer (and an operator) sees everything, including which vendors declined. A vendor member sees the
    job, and the customer's contact details only once their vendor has accepted.
    """

    items = PickupItemSerializer(many=True, read_only=True)
    vendor = serializers.SerializerMethodField()
    customer = serializers.SerializerMethodField()
    rejections = serializers.SerializerMethodField()
    history = TransitionSerializer(source="transitions", many=True, read_only=True)
    vendor_position = PositionSerializer(read_only=True, allow_null=True)
    receipt = serializers.SerializerMethodField()

    class Meta:
        model = PickupRequest
        fields = [
            "id",
            "status",
            "address",
            "latitude",
            "longitude",
            "window_start",
            "window_end",
            "notes",
            "items",
            "vendor",
            "customer",
            "rejections",
            "history",
            "offer_expires_at",
            "vendor_position",
            "receipt",
            "idempotency_key",
            "assignment_task_id",
            "created_at",
            "updated_at",
            "status_changed_at",
        ]
        read_only_fields = fields

    def _is_customer(self, pickup: PickupRequest) -> bool:
        """The customer, and operators, see the whole pickup."""
        viewer = self.context["viewer"]
        return pickup.customer_id == viewer.pk or viewer.is_staff

    def get_vendor(self, pickup: PickupRequest) -> dict | None:
        if pickup.vendor_id is None:
            return None
        return {"id": pickup.vendor_id, "name": pickup.vendor.name}

    def get_customer(self, pickup: PickupRequest) -> dict | None:
        contact_shared = Status(pickup.status) in VENDOR_HELD - {Status.OFFERED}
        if not (self._is_customer(pickup) or contact_shared):
            return None
        user = pickup.customer
        return {
            "id": user.pk,
            "name": user.get_full_name() or user.get_username(),
            "email": user.email,
            "phone": pickup.contact_phone,
        }

    @extend_schema_field(ReceiptSerializer(allow_null=True))
    def get_receipt(self, pickup: PickupRequest) -> dict | None:
        receipt = getattr(pickup, "receipt", None)  # the reverse one-to-one raises when absent
        return ReceiptSerializer(receipt).data if receipt is not None else None

    def get_rejections(self, pickup: PickupRequest) -> list[dict] | None:
        if not self._is_customer(pickup):
            return None
        return RejectionSerializer(pickup.rejections.all(), many=True).data

    def to_representation(self, pickup: PickupRequest) -> dict:
        data = super().to_representation(pickup)
        if not self._is_customer(pickup):
            data.pop("idempotency_key")
            data.pop("assignment_task_id")
            data.pop("rejections")
        return data
