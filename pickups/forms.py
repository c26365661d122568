"""The customer's "new pickup" form: what the browser shows and converts; the API's serializer
and the service validate it, so the rules are the same wherever a pickup is created."""

import uuid
from datetime import timedelta

from django import forms
from django.utils import timezone

from vendors.models import Material

DATETIME_LOCAL = "%Y-%m-%dT%H:%M"


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs) -> None:
        super().__init__(format=DATETIME_LOCAL, **kwargs)


class PickupForm(forms.Form):
    address = forms.CharField(max_length=500)
    latitude = forms.FloatField(widget=forms.NumberInput(attrs={"step": "any"}))
    longitude = forms.FloatField(widget=forms.NumberInput(attrs={"step": "any"}))
    window_start = forms.DateTimeField(label="From", widget=DateTimeLocalInput())
    window_end = forms.DateTimeField(label="Until", widget=DateTimeLocalInput())
    contact_phone = forms.CharField(max_length=32, required=False, label="Contact phone")
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    # One per form shown: submitting twice (a double click, a resend) creates one pickup.
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=100)

    def __init__(self, *args, **kwargs) -> None:
        now = timezone.localtime().replace(second=0, microsecond=0)
        kwargs.setdefault(
            "initial",
            {
                "window_start": now + timedelta(hours=1),
                "window_end": now + timedelta(hours=5),
                "idempotency_key": uuid.uuid4().hex,
            },
        )
        super().__init__(*args, **kwargs)
        self.materials = list(Material.objects.order_by("name"))
        for material in self.materials:
            self.fields[f"kg_{material.code}"] = forms.DecimalField(
                required=False,
                min_value=0,
                decimal_places=2,
                label=f"{material.name} (kg)",
                widget=forms.NumberInput(attrs={"step": "0.01", "min": "0"}),
            )

    def clean(self) -> dict:
        data = super().clean()
        if not any(data.get(f"kg_{m.code}") for m in self.materials):
            raise forms.ValidationError("Give the estimated weight of at least one material.")
        return data

    def item_fields(self) -> list[forms.BoundField]:
        return [self[f"kg_{m.code}"] for m in self.materials]

    def payload(self) -> dict:
        """The API's create body (``PickupCreateSerializer``), as JSON would carry it."""
        data = self.cleaned_data
        return {
            "address": data["address"],
            "latitude": data["latitude"],
            "longitude": data["longitude"],
            "window_start": data["window_start"].isoformat(),
            "window_end": data["window_end"].isoformat(),
            "contact_phone": data["contact_phone"],
            "notes": data["notes"],
            "items": [
                {"material": m.code, "estimated_kg": str(data[f"kg_{m.code}"])}
                for m in self.materials
                if data.get(f"kg_{m.code}")
            ],
        }

    def add_api_errors(self, errors: dict) -> None:
        """The serializer's or the service's field errors, shown on the form."""
        for field, problems in errors.items():
            texts = (
                [str(p) for p in problems if isinstance(p, str)]
                if isinstance(problems, list)
                else []
            )
            self.add_error(field if field in self.fields else None, texts or "Check the weights.")
