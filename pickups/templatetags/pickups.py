from django import template

from pickups.models import STATUS_CHOICES

register = template.Library()
LABELS = dict(STATUS_CHOICES)


@register.filter
def status_label(status: str) -> str:
    """A status's name for people (``en_route`` → "En route")."""
    return LABELS.get(status, status)
