import re
from collections.abc import Mapping
from typing import Any

from rest_framework import serializers
from rest_framework.utils import json

from procurement_system.errors import ValidationError

#: The largest id a client may send (a signed 64-bit integer, what the databases store).
MAX_ID = 2**63 - 1
#: A non-negative integer as text: ASCII digits only (no sign, spaces, decimals or other
#: scripts' digits, which str.isdigit would let through).
ASCII_DIGITS = re.compile(r"[0-9]{1,19}")


def whole_number(text: str) -> int | None:
    """The number ``text`` spells in ASCII digits, or None."""
    return int(text) if ASCII_DIGITS.fullmatch(text) else None


# The JSON type each kind of field takes. DRF would also turn 0 into "0" or "52.5" into 52.5;
# a JSON API should say what it takes and refuse the rest.
_JSON_TYPES: list[tuple[type[serializers.Field], tuple[type, ...], str]] = [
    (serializers.BooleanField, (bool,), "a boolean"),
    (serializers.CharField, (str,), "a string"),
    (serializers.DateTimeField, (str,), "a date-time string"),
    (serializers.IntegerField, (int,), "an integer"),
    (serializers.FloatField, (int, float), "a number"),
    (serializers.DecimalField, (int, float, str), "a number or a decimal string"),
]


def _json_type_error(field: serializers.Field, value: Any) -> str | None:
    if isinstance(field, serializers.ListField) and isinstance(value, list):
        for item in value:
            error = _json_type_error(field.child, item)
            if error:
                return error
        return None
    for field_class, types, name in _JSON_TYPES:
        if isinstance(field, field_class):
            is_bool = isinstance(value, bool)
            if value is None or (is_bool and bool not in types) or not isinstance(value, types):
                return None if value is None else f"Expected {name}."
            return None
    return None


class StrictSerializer(serializers.Serializer):
    """Takes exactly the declared keys, each of its JSON type: a misspelt field or a number where
    a string belongs is an error, not silently ignored or converted."""

    #: False for query strings, where every value arrives as text.
    json_types = True

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            errors = {key: ["Unknown field."] for key in sorted(set(data) - set(self.fields))}
            for name, field in self.fields.items():
                if self.json_types and name in data and not field.read_only:
                    error = _json_type_error(field, data[name])
                    if error:
                        errors[name] = [error]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


def validated(serializer_class: type[serializers.Serializer], data: Any, **kwargs) -> dict:
    """Run a DRF serializer over client input; field errors become a ``validation_error``."""
    if not isinstance(data, dict):
        raise ValidationError(errors={"data": ["Expected a JSON object."]})
    serializer = serializer_class(data=data, **kwargs)
    if not serializer.is_valid():
        raise ValidationError(errors=json.loads(json.dumps(serializer.errors)))
    return serializer.validated_data


class StrictQuerySerializer(StrictSerializer):
    """For query parameters: exactly the declared keys; values are text, converted by the fields."""

    json_types = False
