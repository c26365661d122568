from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from vendors.geo import bounding_box


class Material(models.Model):
    """A kind of goods or scrap that can be collected, e.g. ``paper`` or ``e_waste``."""

    code = models.SlugField(primary_key=True, max_length=40)
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class Vendor(models.Model):
    """A collection business. Its members act for it: they receive offers and work the jobs."""

    name = models.CharField(max_length=200)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="vendors", blank=True)
    latitude = models.FloatField(validators=[MinValueValidator(-90), MaxValueValidator(90)])
    longitude = models.FloatField(validators=[MinValueValidator(-180), MaxValueValidator(180)])
    service_radius_km = models.FloatField(
        validators=[MinValueValidator(0.1), MaxValueValidator(500)]
    )
    capacity = models.PositiveIntegerField(
        default=5, help_text="How many jobs (offered or in progress) the vendor takes at once."
    )
    open_jobs = models.PositiveIntegerField(
        default=0,
        editable=False,
        help_text="Jobs currently offered to or held by the vendor; changed only by services, "
        "with conditional updates so it never exceeds capacity.",
    )
    is_active = models.BooleanField(default=True, help_text="Operators switch a vendor off here.")
    is_online = models.BooleanField(default=True, help_text="The vendor is taking offers now.")
    # The service area's bounding box, kept in step with the location and radius on save, so
    # candidate vendors are found with an indexed range query rather than a loop over all.
    min_lat = models.FloatField(editable=False, default=0)
    max_lat = models.FloatField(editable=False, default=0)
    min_lon = models.FloatField(editable=False, default=0)
    max_lon = models.FloatField(editable=False, default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["min_lat", "max_lat", "min_lon", "max_lon"])]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        box = bounding_box(self.latitude, self.longitude, self.service_radius_km)
        self.min_lat, self.max_lat, self.min_lon, self.max_lon = box
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and {"latitude", "longitude", "service_radius_km"} & set(
            update_fields
        ):
            kwargs["update_fields"] = {*update_fields, "min_lat", "max_lat", "min_lon", "max_lon"}
        super().save(*args, **kwargs)


class VendorMaterial(models.Model):
    """A material a vendor collects, and what it pays per kilogram."""

    vendor = models.ForeignKey(Vendor, on_delete=models.CASCADE, related_name="materials")
    material = models.ForeignKey(Material, on_delete=models.PROTECT, related_name="+")
    price_per_kg = models.DecimalField(
        max_digits=10, decimal_places=2, validators=[MinValueValidator(Decimal("0"))]
    )

    class Meta:
        ordering = ["material_id"]
        constraints = [
            models.UniqueConstraint(fields=["vendor", "material"], name="vendor_material_unique")
        ]

    def __str__(self) -> str:
        return f"{self.vendor}: {self.material_id} at {self.price_per_kg}/kg"
