from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.core import mail

from notifications.models import Notification
from pickups import services, tasks
from pickups.digest import vendor_digests_send
from tests.factories import HOME, UserFactory, VendorFactory, create_pickup, member_of

pytestmark = pytest.mark.django_db

DAY = date(2030, 5, 4)
DURING = datetime(2030, 5, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
def busy_day(customer, run_on_commit):
    """On DAY the near vendor got three offers, accepted two, completed one (12 kg × 0.10)."""
    near = VendorFactory(name="Near", latitude=HOME[0] + 0.005)
    near.members.add(UserFactory(username="second", email="second@example.com"))
    quiet = VendorFactory(name="Quiet", latitude=HOME[0] + 2)  # nowhere near
    member = member_of(near)
    with time_machine.travel(DURING, tick=False):
        first, second, third = (run_on_commit(create_pickup, customer) for _ in range(3))
        run_on_commit(services.pickup_reject, pickup_id=third.pk, by=member, reason="")
        for pickup in (first, second):
            run_on_commit(services.pickup_accept, pickup_id=pickup.pk, by=member)
        for step, weights in (
            ("en_route", None),
            ("picked_up", {"paper": "12"}),
            ("completed", None),
        ):
            run_on_commit(
                services.pickup_advance,
                pickup_id=first.pk,
                by=member,
                status=step,
                actual_weights=weights,
            )
    with time_machine.travel(DURING + timedelta(days=1), tick=False):  # not counted for DAY
        run_on_commit(
            services.pickup_accept, pickup_id=run_on_commit(create_pickup, customer).pk, by=member
        )
    return near, quiet


def digests() -> dict[str, dict]:
    return {
        n.recipient.username: n.data
        for n in Notification.objects.filter(kind="vendor.digest").select_related("recipient")
    }


def test_each_member_gets_the_days_figures(busy_day, settings, run_on_commit):
    near, quiet = busy_day
    run = run_on_commit(vendor_digests_send, day=DAY)
    assert (run.vendors, run.notified) == (2, 3)
    figures = digests()
    expected = {
        "vendor_id": near.pk,
        "day": "2030-05-04",
        "offers": 3,
        "accepted": 2,
        "completed": 1,
        "earnings": "1.20",
        "currency": settings.PICKUP_CURRENCY,
    }
    assert figures[member_of(near).username] == figures["second"] == expected
    assert figures[member_of(quiet).username] == {
        **expected,
        "vendor_id": quiet.pk,
        "offers": 0,
        "accepted": 0,
        "completed": 0,
        "earnings": "0.00",
    }


def test_without_email_configured_nothing_is_mailed(busy_day, settings):
    settings.EMAIL_ENABLED = False
    assert vendor_digests_send(day=DAY).emailed == 0
    assert mail.outbox == []


def test_with_email_each_member_with_an_address_gets_one(busy_day, settings):
    settings.EMAIL_ENABLED = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    run = vendor_digests_send(day=DAY)
    addressed = sorted(m.to[0] for m in mail.outbox)
    with_address = sorted(u.email for v in busy_day for u in v.members.all() if u.email)
    assert addressed == with_address and run.emailed == len(with_address) > 0
    assert all(len(m.to) == 1 for m in mail.outbox)
    assert "3 offers, 2 accepted, 1 completed, earnings 1.20" in next(
        m.body for m in mail.outbox if m.to == ["second@example.com"]
    )


def test_a_second_run_for_the_same_day_sends_nothing_again(busy_day, settings):
    settings.EMAIL_ENABLED = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    vendor_digests_send(day=DAY)
    sent = len(mail.outbox)
    again = vendor_digests_send(day=DAY)
    assert (again.notified, again.emailed) == (0, 0)
    assert len(mail.outbox) == sent
    assert Notification.objects.filter(kind="vendor.digest").count() == 3


def test_the_task_covers_yesterday_by_default(busy_day):
    with time_machine.travel(DURING + timedelta(days=1), tick=False):
        result = tasks.send_vendor_digests_task.delay().get()
    assert result["day"] == "2030-05-04" and result["notified"] == 3
