"""The benchmark's people and vendors, written straight into the stack's database.

Customers, and vendors around one point each with a member; every user gets an API token. Bulk
inserts, so ten thousand users take seconds (their passwords are unusable: they sign in with
their tokens only).
"""

import secrets
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework.authtoken.models import Token

from vendors.models import Vendor, VendorMaterial

# Berlin, Alexanderplatz: the demo data's city. Pickups are placed around it, vendors too.
CENTRE = (52.5219, 13.4132)
MATERIAL = "paper"


@dataclass(frozen=True)
class Person:
    user_id: int
    token: str


@dataclass(frozen=True)
class Crowd:
    customers: list[Person]
    vendor_members: list[Person]  # one per vendor, in the vendors' order
    vendor_ids: list[int]


def people_with_tokens(prefix: str, count: int) -> list[Person]:
    """``count`` users named ``<prefix>-<i>``, each with an API token."""
    User = get_user_model()
    users = User.objects.bulk_create(
        User(username=f"{prefix}-{i}", email=f"{prefix}-{i}@bench.invalid", password="!")
        for i in range(count)
    )
    if not users or users[0].pk is None:  # backends that return no ids (none here, but say so)
        users = list(User.objects.filter(username__startswith=f"{prefix}-").order_by("pk"))
    tokens = Token.objects.bulk_create(
        Token(key=secrets.token_hex(20), user=user) for user in users
    )
    return [Person(user_id=t.user_id, token=t.key) for t in tokens]


@transaction.atomic
def seed(*, run: str, customers: int, vendors: int, vendor_capacity: int) -> Crowd:
    """``customers`` customers and ``vendors`` vendors (one member each) around ``CENTRE``,
    online, taking paper, each with room for ``vendor_capacity`` open jobs."""
    # Only the benchmark's vendors take offers: the demo ones have no one connected.
    Vendor.objects.update(is_active=False)
    crowd_customers = people_with_tokens(f"{run}-customer", customers)
    members = people_with_tokens(f"{run}-vendor", vendors)
    vendor_ids = []
    for i, member in enumerate(members):
        vendor = Vendor(
            name=f"{run} vendor {i}",
            # Spread over a few kilometres, all within reach of every pickup.
            latitude=CENTRE[0] + 0.01 * (i % 7 - 3),
            longitude=CENTRE[1] + 0.01 * (i % 5 - 2),
            service_radius_km=50,
            capacity=vendor_capacity,
            is_active=True,
            is_online=True,
        )
        vendor.save()
        vendor.members.add(member.user_id)
        VendorMaterial.objects.create(
            vendor=vendor, material_id=MATERIAL, price_per_kg=Decimal("0.08")
        )
        vendor_ids.append(vendor.pk)
    return Crowd(customers=crowd_customers, vendor_members=members, vendor_ids=vendor_ids)
