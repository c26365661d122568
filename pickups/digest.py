"""The vendors' daily digest: yesterday's offers, accepted and completed jobs, and earnings."""

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone

from notifications.dispatch import notify
from pickups.models import PickupTransition, Receipt
from pickups.transitions import Event
from vendors.models import Vendor

logger = logging.getLogger(__name__)

COUNTED = {Event.ASSIGN: "offers", Event.ACCEPT: "accepted", Event.COMPLETE: "completed"}


@dataclass(frozen=True)
class DigestRun:
    day: date
    vendors: int
    notified: int
    emailed: int


def vendor_digests_send(*, day: date | None = None) -> DigestRun:
    """Tell every member of every active vendor what the vendor did on ``day`` (default:
    yesterday, UTC): offers received, accepted, completed, and earnings (the total of the
    receipts issued). Stored as a ``vendor.digest`` notification, and emailed to members with an
    address when email is configured (``EMAIL_URL``).

    Idempotent per vendor and day: a second run finds the notifications stored and neither
    notifies nor emails again.
    """
    day = day or (timezone.now() - timedelta(days=1)).date()
    start = datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())
    end = start + timedelta(days=1)
    counts: dict[int, dict[str, int]] = {}
    for row in (
        PickupTransition.objects.filter(
            created_at__gte=start, created_at__lt=end, event__in=list(COUNTED), vendor__isnull=False
        )
        .values("vendor_id", "event")
        .annotate(n=Count("id"))
    ):
        counts.setdefault(row["vendor_id"], {})[COUNTED[Event(row["event"])]] = row["n"]
    earnings = dict(
        Receipt.objects.filter(issued_at__gte=start, issued_at__lt=end)
        .values("vendor_id")
        .annotate(total=Sum("total"))
        .values_list("vendor_id", "total")
    )
    members: dict[int, list[int]] = {}
    for vendor_id, user_id in Vendor.members.through.objects.filter(
        vendor__is_active=True
    ).values_list("vendor_id", "user_id"):
        members.setdefault(vendor_id, []).append(user_id)
    names = dict(Vendor.objects.filter(pk__in=members).values_list("id", "name"))
    emails = dict(
        get_user_model()
        .objects.filter(pk__in={u for users in members.values() for u in users})
        .exclude(email="")
        .values_list("pk", "email")
    )
    notified = emailed = 0
    for vendor_id, user_ids in sorted(members.items()):
        stats = {"offers": 0, "accepted": 0, "completed": 0, **counts.get(vendor_id, {})}
        total = earnings.get(vendor_id) or Decimal("0.00")
        offers = "1 offer" if stats["offers"] == 1 else f"{stats['offers']} offers"
        text = (
            f"{names[vendor_id]} on {day.isoformat()}: {offers}, "
            f"{stats['accepted']} accepted, {stats['completed']} completed, "
            f"earnings {total:.2f} {settings.PICKUP_CURRENCY}."
        )
        with transaction.atomic():
            new = notify(
                messages=dict.fromkeys(user_ids, text),
                kind="vendor.digest",
                data={
                    "vendor_id": vendor_id,
                    "day": day.isoformat(),
                    **stats,
                    "earnings": f"{total:.2f}",
                    "currency": settings.PICKUP_CURRENCY,
                },
                event_key=f"digest:{vendor_id}:{day.isoformat()}",
            )
        notified += len(new)
        if settings.EMAIL_ENABLED:
            emailed += _email(text, day, [emails[u] for u in new if u in emails])
    return DigestRun(day=day, vendors=len(members), notified=notified, emailed=emailed)


def _email(text: str, day: date, recipients: list[str]) -> int:
    sent = 0
    for address in recipients:  # one message each: members do not see each other's address
        try:
            sent += send_mail(
                f"Your pickups on {day.isoformat()}", text, None, [address], fail_silently=False
            )
        except Exception:  # the notification is stored; one bad address must not stop the rest
            logger.warning("digest email to %s failed", address, exc_info=True)
    return sent
