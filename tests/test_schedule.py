"""The periodic tasks: created for beat by one idempotent command, each routed to a queue."""

import pytest
from django.conf import settings
from django.core.management import call_command
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from procurement_system.celery import app
from procurement_system.schedule import periodic_tasks

pytestmark = pytest.mark.django_db

QUEUES = {settings.QUEUE_ASSIGNMENTS, settings.QUEUE_NOTIFICATIONS, settings.QUEUE_MAINTENANCE}


def setup(*args: str) -> None:
    call_command("setup_periodic_tasks", *args, stdout=open("/dev/null", "w"))  # noqa: SIM115


def test_creates_every_periodic_task_with_its_default_schedule():
    setup()
    rows = {row.name: row for row in PeriodicTask.objects.all()}
    assert set(rows) == {d.name for d in periodic_tasks()}
    for definition in periodic_tasks():
        row = rows[definition.name]
        assert row.task == definition.task and row.enabled
        if definition.every_seconds:
            assert (row.interval.every, row.interval.period) == (
                definition.every_seconds,
                "seconds",
            )
            assert row.expire_seconds == definition.every_seconds
        else:
            assert row.crontab.hour == str(settings.SCHEDULE_DIGEST_HOUR)
            assert row.crontab.minute == "0"


def test_running_it_again_changes_nothing_and_keeps_what_operators_set():
    setup()
    offers = PeriodicTask.objects.get(task="pickups.tasks.expire_offers_task")
    slower, _ = IntervalSchedule.objects.get_or_create(every=30, period="seconds")
    offers.interval, offers.enabled = slower, False
    offers.save()
    count = PeriodicTask.objects.count()
    setup()
    setup()
    assert PeriodicTask.objects.count() == count
    offers.refresh_from_db()
    assert (offers.interval.every, offers.enabled) == (30, False)


def test_reset_restores_the_defaults():
    setup()
    offers = PeriodicTask.objects.get(task="pickups.tasks.expire_offers_task")
    offers.interval, _ = IntervalSchedule.objects.get_or_create(every=30, period="seconds")
    offers.enabled = False
    offers.save()
    setup("--reset")
    offers.refresh_from_db()
    assert (offers.interval.every, offers.enabled) == (settings.SCHEDULE_OFFER_SWEEP_SECONDS, True)


def test_every_task_of_the_project_is_routed_to_one_of_the_three_queues():
    app.loader.import_default_modules()
    ours = sorted(
        name
        for name in app.tasks
        if name.split(".")[0] in {"pickups", "vendors", "notifications", "procurement_system"}
    )
    assert ours, "the project's tasks are registered"
    routes = settings.CELERY_TASK_ROUTES
    assert sorted(routes) == ours
    assert {route["queue"] for route in routes.values()} == QUEUES
    for name in ours:
        queue = app.amqp.router.route({}, name)["queue"].name
        assert queue == routes[name]["queue"]


def test_the_periodic_tasks_are_registered_tasks():
    app.loader.import_default_modules()
    assert {d.task for d in periodic_tasks()} <= set(app.tasks)
