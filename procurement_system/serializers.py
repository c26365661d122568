from collections.abc import Mapping
from typing import Any

from rest_framework import serializers
from rest_framework.utils import json

from procurement_system.errors import ValidationError


class StrictSerializer(serializers.Serializer):
    """Refuses keys it does not declare, so a misspelt field is an error, not silently ignored."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key: ["Unknown field."] for key in unknown})
        return super().to_internal_value(data)


def validated(serializer_class: type[serializers.Serializer], data: Any, **kwargs) -> dict:
    """Run a DRF serializer over client input; field errors become a ``validation_error``."""
    if not isinstance(data, dict):
        raise ValidationError(errors={"data": ["Expected a JSON object."]})
    serializer = serializer_class(data=data, **kwargs)
    if not serializer.is_valid():
        raise ValidationError(errors=json.loads(json.dumps(serializer.errors)))
    return serializer.validated_data
