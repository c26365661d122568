"""The portal's settings form: capacity, service radius and the price list, one row per material."""

from decimal import Decimal

from django import forms

from vendors.models import Material, Vendor
from vendors.services import MAX_PRICE_PER_KG, PriceInput


class VendorSettingsForm(forms.Form):
    capacity = forms.IntegerField(
        min_value=0, max_value=1000, help_text="Jobs offered to or held by you at once."
    )
    service_radius_km = forms.FloatField(label="Service radius (km)", min_value=0.1, max_value=500)

    def __init__(self, *args, vendor: Vendor, **kwargs) -> None:
        prices = {m.material_id: m.price_per_kg for m in vendor.materials.all()}
        initial = {"capacity": vendor.capacity, "service_radius_km": vendor.service_radius_km}
        self.materials = list(Material.objects.order_by("name"))
        for material in self.materials:
            initial[f"collects_{material.code}"] = material.code in prices
            initial[f"price_{material.code}"] = prices.get(material.code)
        super().__init__(*args, initial=initial, **kwargs)
        for material in self.materials:
            self.fields[f"collects_{material.code}"] = forms.BooleanField(
                required=False, label=f"Collect {material.name}"
            )
            self.fields[f"price_{material.code}"] = forms.DecimalField(
                required=False,
                min_value=Decimal("0"),
                max_value=MAX_PRICE_PER_KG,
                decimal_places=2,
                label=f"{material.name} price per kg",
            )

    def rows(self) -> list[tuple[Material, forms.BoundField, forms.BoundField]]:
        return [(m, self[f"collects_{m.code}"], self[f"price_{m.code}"]) for m in self.materials]

    def clean(self) -> dict:
        data = super().clean()
        for material in self.materials:
            if data.get(f"collects_{material.code}") and data.get(f"price_{material.code}") is None:
                self.add_error(f"price_{material.code}", "Give a price for what you collect.")
        return data

    def changes(self) -> dict:
        """The keyword arguments of ``vendor_update_settings``."""
        data = self.cleaned_data
        return {
            "capacity": data["capacity"],
            "service_radius_km": data["service_radius_km"],
            "materials": [
                PriceInput(material=m.code, price_per_kg=data[f"price_{m.code}"])
                for m in self.materials
                if data[f"collects_{m.code}"]
            ],
        }


class RejectForm(forms.Form):
    reason = forms.CharField(max_length=500, required=False)
