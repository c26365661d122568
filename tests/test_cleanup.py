"""The cleanup tasks delete only what is old, in bounded batches."""

from datetime import timedelta

import pytest
import time_machine
from django.core.cache import caches
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from notifications.models import Notification
from notifications.services import notification_store
from notifications.tasks import purge_read_notifications_task
from pickups.models import LocationPoint
from pickups.tasks import purge_location_points_task
from procurement_system import cleanup
from procurement_system.tasks import purge_task_results_task
from tests.factories import VendorFactory, create_pickup

pytestmark = pytest.mark.django_db


def store(user, n: int) -> Notification:
    return notification_store(
        user_id=user.pk, kind="pickup.created", message="m", data={}, event_key=f"k{n}"
    )[0]


def test_read_notifications_go_after_the_retention_unread_ones_stay(customer, settings):
    settings.NOTIFICATION_RETENTION_DAYS = 30
    old_read, old_unread, recent_read = store(customer, 1), store(customer, 2), store(customer, 3)
    now = timezone.now()
    Notification.objects.filter(pk=old_read.pk).update(read_at=now - timedelta(days=31))
    Notification.objects.filter(pk=recent_read.pk).update(read_at=now - timedelta(days=29))
    assert purge_read_notifications_task.delay().get() == 1
    assert set(Notification.objects.values_list("pk", flat=True)) == {old_unread.pk, recent_read.pk}
    assert store(customer, 4).seq == 4  # numbering goes on where it was


def test_location_points_go_after_the_retention(customer, settings):
    settings.LOCATION_RETENTION_HOURS = 48
    vendor = VendorFactory()
    pickup = create_pickup(customer)
    now = timezone.now()
    for hours in (49, 47, 1):
        LocationPoint.objects.create(
            pickup=pickup,
            vendor=vendor,
            latitude=52.5,
            longitude=13.4,
            recorded_at=now - timedelta(hours=hours),
        )
    assert purge_location_points_task.delay().get() == 1
    assert LocationPoint.objects.count() == 2


def test_deletes_in_batches_and_stops_at_the_batch_limit(customer, settings):
    settings.CLEANUP_BATCH_SIZE = 3
    settings.CLEANUP_MAX_BATCHES = 2
    for n in range(8):
        store(customer, n)
    rows = Notification.objects.all()
    assert cleanup.delete_in_batches(rows) == 6  # two batches of three; the next run goes on
    assert cleanup.delete_in_batches(rows) == 2
    assert cleanup.delete_in_batches(rows) == 0


@pytest.fixture
def results_table(settings):
    """The real DatabaseCache table of task results (the tests' default is in memory)."""
    alias = settings.CELERY_RESULTS_CACHE_ALIAS
    settings.CACHES = {
        **settings.CACHES,
        alias: {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "celery_results_cache",
        },
    }
    call_command("createcachetable", database="default")
    caches[alias].close()
    yield caches[alias]
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE celery_results_cache")


def test_expired_task_results_are_deleted_live_ones_kept(results_table, settings):
    settings.CLEANUP_BATCH_SIZE = 2
    for n in range(5):
        results_table.set(f"old-{n}", "done", timeout=60)
    results_table.set("live", "done", timeout=3600)
    with time_machine.travel(timezone.now() + timedelta(minutes=2), tick=False):
        assert purge_task_results_task() == 5  # called directly: no result of its own stored
    assert results_table.get("live") == "done"
    with connection.cursor() as cursor:
        cursor.execute("SELECT cache_key FROM celery_results_cache")
        assert [row[0] for row in cursor.fetchall()] == [results_table.make_key("live")]
