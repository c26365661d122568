"""Deleting old rows in bounded batches, so a large backlog never becomes one long transaction
that locks a table (or, on SQLite, the whole database) while the platform is serving."""

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone


def delete_in_batches(rows: QuerySet) -> int:
    """Delete ``rows`` ``CLEANUP_BATCH_SIZE`` at a time, each batch its own transaction, at most
    ``CLEANUP_MAX_BATCHES`` batches a call (the next run goes on). Returns how many went."""
    deleted = 0
    for _ in range(settings.CLEANUP_MAX_BATCHES):
        ids = list(rows.order_by("pk").values_list("pk", flat=True)[: settings.CLEANUP_BATCH_SIZE])
        if not ids:
            break
        with transaction.atomic():
            deleted += rows.model.objects.filter(pk__in=ids).delete()[0]
    return deleted


def delete_expired_cache_entries(table: str) -> int:
    """Delete the expired rows of a DatabaseCache table in batches (Django only culls such a
    table when it is full, so expired task results would otherwise stay forever)."""
    quoted = connection.ops.quote_name(table)
    deleted = 0
    for _ in range(settings.CLEANUP_MAX_BATCHES):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {quoted} WHERE cache_key IN "  # noqa: S608 - a settings name
                f"(SELECT cache_key FROM {quoted} WHERE expires < %s LIMIT %s)",
                [timezone.now(), settings.CLEANUP_BATCH_SIZE],
            )
            count = cursor.rowcount
        deleted += count
        if count < settings.CLEANUP_BATCH_SIZE:
            break
    return deleted
