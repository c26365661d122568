import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from pickups.transitions import VENDOR_HELD, Status

STATUS_CHOICES = [(s.value, s.value.replace("_", " ")) for s in Status]


class PickupRequest(models.Model):
    """A customer's request to have goods or scrap collected."""

    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="pickups"
    )
    address = models.CharField(max_length=500)
    latitude = models.FloatField(validators=[MinValueValidator(-90), MaxValueValidator(90)])
    longitude = models.FloatField(validators=[MinValueValidator(-180), MaxValueValidator(180)])
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    notes = models.TextField(blank=True, max_length=2000)
    contact_phone = models.CharField(max_length=32, blank=True)
    status = models.CharField(max_length=20, choices=STATUS_CHOICES, default=Status.PENDING)
    vendor = models.ForeignKey(
        "vendors.Vendor",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="pickups",
        help_text="The vendor the pickup is offered to or assigned to.",
    )
    # NULL, not "", when absent, so the per-customer unique constraint ignores keyless requests.
    idempotency_key = models.CharField(max_length=100, null=True, blank=True)  # noqa: DJ001
    # The Celery task that assigns (or last re-assigned) the pickup, for clients that poll.
    assignment_task_id = models.CharField(max_length=36, blank=True, db_index=True)
    # Bumped on every change; with the pickup id it names one version of the pickup, which is
    # what makes a notification's de-duplication key.
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    status_changed_at = models.DateTimeField(auto_now_add=True)
    # The one live offer timer: while offered, when the offer is withdrawn unless accepted.
    offer_expires_at = models.DateTimeField(null=True, blank=True)
    # While unassigned: how many retries found no vendor, and when the next one is due.
    retry_count = models.PositiveIntegerField(default=0)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    # The vendor's last reported position while en route: {lat, lon, heading, speed, at}.
    vendor_position = models.JSONField(null=True, blank=True)
    # One id for everything that happens to this pickup, from the request that created it through
    # every task and notification: in the logs and the domain events.
    correlation_id = models.UUIDField(default=uuid.uuid4, editable=False, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["customer", "-created_at"]),
            models.Index(fields=["vendor", "status"]),
            # The sweeps: due offers, due retries, windows that ended.
            models.Index(fields=["status", "offer_expires_at"]),
            models.Index(fields=["status", "next_retry_at"]),
            models.Index(fields=["status", "window_end"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="pickup_idempotency_key_unique_per_customer",
            ),
            models.CheckConstraint(
                condition=Q(window_start__lt=models.F("window_end")),
                name="pickup_window_ordered",
            ),
            models.CheckConstraint(
                condition=(
                    Q(status__in=sorted(s.value for s in VENDOR_HELD), vendor__isnull=False)
                    | (~Q(status__in=sorted(s.value for s in VENDOR_HELD)) & Q(vendor__isnull=True))
                ),
                name="pickup_vendor_iff_held",
            ),
        ]

    def __str__(self) -> str:
        return f"Pickup #{self.pk} ({self.status})"


class PickupItem(models.Model):
    pickup = models.ForeignKey(PickupRequest, on_delete=models.CASCADE, related_name="items")
    material = models.ForeignKey("vendors.Material", on_delete=models.PROTECT, related_name="+")
    estimated_kg = models.DecimalField(max_digits=9, decimal_places=2)
    actual_kg = models.DecimalField(max_digits=9, decimal_places=2, null=True, blank=True)
    # The price per kg of the vendor the pickup was last offered to, quoted with the offer; the
    # receipt pays at this price even if the vendor's price list changes meanwhile.
    price_per_kg = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["pickup", "material"], name="pickup_item_unique"),
            models.CheckConstraint(condition=Q(estimated_kg__gt=0), name="item_estimate_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.estimated_kg} kg {self.material_id}"


class PickupRejection(models.Model):
    """A vendor that said no to a pickup, that the customer refused, or that let the offer time
    out; never offered it again."""

    class Role(models.TextChoices):
        VENDOR = "vendor"
        CUSTOMER = "customer"
        TIMEOUT = "timeout"

    pickup = models.ForeignKey(PickupRequest, on_delete=models.CASCADE, related_name="rejections")
    vendor = models.ForeignKey("vendors.Vendor", on_delete=models.CASCADE, related_name="+")
    rejected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    role = models.CharField(max_length=10, choices=Role.choices)
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.vendor_id} rejected #{self.pickup_id} ({self.role})"


class PickupTransition(models.Model):
    """One status change: when it happened, why, who did it and which vendor was involved."""

    pickup = models.ForeignKey(PickupRequest, on_delete=models.CASCADE, related_name="transitions")
    event = models.CharField(max_length=20)
    from_status = models.CharField(max_length=20)
    to_status = models.CharField(max_length=20)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    vendor = models.ForeignKey(
        "vendors.Vendor", on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"#{self.pickup_id} {self.from_status} -> {self.to_status}"


class LocationPoint(models.Model):
    """One position a vendor member reported while en route to a pickup; pruned after a while
    (the last one is also kept on the pickup as ``vendor_position``)."""

    pickup = models.ForeignKey(PickupRequest, on_delete=models.CASCADE, related_name="+")
    vendor = models.ForeignKey("vendors.Vendor", on_delete=models.CASCADE, related_name="+")
    latitude = models.FloatField()
    longitude = models.FloatField()
    heading = models.FloatField(null=True, blank=True, help_text="Degrees from north, 0-360.")
    speed = models.FloatField(null=True, blank=True, help_text="Metres per second.")
    recorded_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["recorded_at", "id"]

    def __str__(self) -> str:
        return f"#{self.pickup_id} at {self.latitude:.5f},{self.longitude:.5f}"


class Receipt(models.Model):
    """What was collected and what it is worth, issued once when a pickup is completed."""

    pickup = models.OneToOneField(PickupRequest, on_delete=models.CASCADE, related_name="receipt")
    vendor = models.ForeignKey("vendors.Vendor", on_delete=models.PROTECT, related_name="+")
    vendor_name = models.CharField(max_length=200)
    currency = models.CharField(max_length=3)
    total_kg = models.DecimalField(max_digits=12, decimal_places=2)
    total = models.DecimalField(max_digits=14, decimal_places=2)
    issued_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-issued_at", "-id"]

    def __str__(self) -> str:
        return f"{self.number}: {self.total} {self.currency}"

    @property
    def number(self) -> str:
        return f"R-{self.pickup_id:06d}"


class ReceiptLine(models.Model):
    receipt = models.ForeignKey(Receipt, on_delete=models.CASCADE, related_name="lines")
    material = models.ForeignKey("vendors.Material", on_delete=models.PROTECT, related_name="+")
    material_name = models.CharField(max_length=100)
    estimated_kg = models.DecimalField(max_digits=9, decimal_places=2)
    actual_kg = models.DecimalField(max_digits=9, decimal_places=2)
    price_per_kg = models.DecimalField(max_digits=10, decimal_places=2)
    amount = models.DecimalField(max_digits=14, decimal_places=2)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.actual_kg} kg {self.material_id} = {self.amount}"


class DomainEvent(models.Model):
    """One pickup transition, told to other systems (ERP, accounting): the transactional outbox.

    Written in the transaction that makes the change, so an event exists exactly when its change
    committed; the relay (``pickups.outbox``) publishes it to RabbitMQ afterwards and stamps
    ``published_at`` once the broker confirmed it. ``id`` is the order of publication.
    """

    # Stable across redeliveries: the message id, by which consumers drop duplicates.
    event_id = models.UUIDField(unique=True, editable=False)
    event = models.CharField(max_length=20)
    routing_key = models.CharField(max_length=40)
    # No foreign key: an event is a fact about the past, and outlives what it describes.
    pickup_id = models.BigIntegerField(db_index=True)
    # The message body, as ``pickups/events_schema.json`` describes it.
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    # Null until RabbitMQ confirmed the message.
    published_at = models.DateTimeField(null=True, blank=True)
    # Publish attempts, and the error of the last one that failed (empty once published).
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # The relay's "unpublished, in order" and the purge's "published before".
            models.Index(fields=["published_at", "id"], name="domain_event_relay"),
        ]

    def __str__(self) -> str:
        return f"{self.routing_key} #{self.pickup_id} ({self.event_id})"


class EventRelayLease(models.Model):
    """Who relays domain events now, and until when: one relay at a time keeps them in order.

    A relay takes the lease with one conditional update (free or expired), renews it after each
    batch and gives it back when done; a relay that died holding it loses it when it expires.
    """

    name = models.CharField(max_length=40, primary_key=True)
    holder = models.CharField(max_length=40, blank=True)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name}: {self.holder or 'free'} until {self.expires_at}"
