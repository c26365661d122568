"""Demo data for ``make run``: one customer, three vendors around Berlin, an operator.

Idempotent: running it again resets the demo users' passwords and the vendors' settings and
prints the same tokens.
"""

from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from rest_framework.authtoken.models import Token

from vendors.models import Material, Vendor, VendorMaterial

DEMO_PASSWORD = "demo-pass-123"

MATERIALS = {
    "paper": "Paper",
    "cardboard": "Cardboard",
    "plastic": "Plastics",
    "metal": "Metal scrap",
    "glass": "Glass",
    "e_waste": "E-waste",
}

# Around Berlin's Alexanderplatz, where the demo customer lives: Victor is nearest, then Vera,
# then Vince, so declining an offer visibly moves it on to the next vendor.
VENDORS = [
    {
        "member": "victor",
        "name": "Victor Recycling",
        "lat": 52.5250,
        "lon": 13.4100,
        "radius": 15,
        "capacity": 5,
        "prices": {"paper": "0.08", "cardboard": "0.06", "plastic": "0.15", "metal": "0.90"},
    },
    {
        "member": "vera",
        "name": "Vera Metals",
        "lat": 52.5100,
        "lon": 13.3900,
        "radius": 20,
        "capacity": 5,
        "prices": {"paper": "0.07", "cardboard": "0.05", "metal": "1.10", "e_waste": "0.50"},
    },
    {
        "member": "vince",
        "name": "Vince Scrap & E-waste",
        "lat": 52.4800,
        "lon": 13.4400,
        "radius": 25,
        "capacity": 5,
        "prices": {"paper": "0.06", "plastic": "0.12", "glass": "0.03", "e_waste": "0.65"},
    },
]


class Command(BaseCommand):
    help = "Create or refresh the demo users, vendors, materials and API tokens."

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        for code, name in MATERIALS.items():
            Material.objects.update_or_create(code=code, defaults={"name": name})
        tokens = {
            "alice": self._user("alice", first_name="Alice", last_name="Customer"),
            "admin": self._user("admin", is_staff=True, is_superuser=True),
        }
        for spec in VENDORS:
            tokens[spec["member"]] = self._user(
                spec["member"], first_name=spec["member"].capitalize()
            )
            vendor, _ = Vendor.objects.update_or_create(
                name=spec["name"],
                defaults={
                    "latitude": spec["lat"],
                    "longitude": spec["lon"],
                    "service_radius_km": spec["radius"],
                    "capacity": spec["capacity"],
                    "is_active": True,
                    "is_online": True,
                },
            )
            vendor.members.add(get_user_model().objects.get(username=spec["member"]))
            for code, price in spec["prices"].items():
                VendorMaterial.objects.update_or_create(
                    vendor=vendor, material_id=code, defaults={"price_per_kg": Decimal(price)}
                )
        self.stdout.write(f"Demo users (password {DEMO_PASSWORD}) and API tokens:")
        for username, key in tokens.items():
            self.stdout.write(f"  {username:<7} Authorization: Token {key}")

    def _user(self, username: str, **fields) -> str:
        user, _ = get_user_model().objects.update_or_create(
            username=username, defaults={"email": f"{username}@example.com", **fields}
        )
        user.set_password(DEMO_PASSWORD)
        user.save()
        return Token.objects.get_or_create(user=user)[0].key
