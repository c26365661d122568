from datetime import timedelta
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from pickups.services import ItemInput, pickup_create
from vendors.models import Material, Vendor, VendorMaterial

# A point in Berlin; vendors below are placed relative to it.
HOME = (52.5219, 13.4132)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")


class MaterialFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Material
        django_get_or_create = ["code"]

    code = "paper"
    name = factory.LazyAttribute(lambda m: m.code.title())


class VendorFactory(factory.django.DjangoModelFactory):
    """A vendor near HOME collecting ``materials`` (default: paper), with one member."""

    class Meta:
        model = Vendor
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Vendor {n}")
    latitude = HOME[0] + 0.01
    longitude = HOME[1]
    service_radius_km = 10
    capacity = 3

    @factory.post_generation
    def materials(self, create, extracted, **kwargs):
        for code in extracted if extracted is not None else ["paper"]:
            VendorMaterial.objects.create(
                vendor=self, material=MaterialFactory(code=code), price_per_kg=Decimal("0.10")
            )

    @factory.post_generation
    def member(self, create, extracted, **kwargs):
        self.members.add(extracted or UserFactory())


def member_of(vendor: Vendor):
    return vendor.members.first()


def create_pickup(customer, *, materials=("paper",), location=HOME, key=None, **overrides):
    """Create a pickup through the service, as a client would."""
    for code in materials:
        MaterialFactory(code=code)
    now = timezone.now()
    fields = {
        "customer": customer,
        "address": "Alexanderplatz 1, Berlin",
        "latitude": location[0],
        "longitude": location[1],
        "window_start": now + timedelta(hours=1),
        "window_end": now + timedelta(hours=4),
        "items": [ItemInput(code, Decimal("12.50")) for code in materials],
        "idempotency_key": key,
        **overrides,
    }
    return pickup_create(**fields)[0]


def client_for(user=None) -> APIClient:
    """A REST client speaking JSON, signed in as ``user`` (anonymous for None)."""
    client = APIClient()
    client.default_format = "json"
    if user is not None:
        client.force_authenticate(user)
    return client
