"""The ORM from async code (the WebSocket consumers): a pool of threads, not one.

Channels' ``database_sync_to_async`` is thread-sensitive: every socket's database work in a web
process runs in one and the same thread, one call after another, so a process does at most one
query at a time and each create waits behind every other socket's. Here the calls run in a pool
of ``WEB_DATABASE_THREADS`` threads, each with its own database connection, so the process
waits on several queries at once. Each socket still runs its own calls one after the other (a
consumer awaits each call before it reads its next frame), so nothing about one socket's order
changes. Connections are opened and recycled per thread as Django does for any thread
(``CONN_MAX_AGE``), checked before and after each call.
"""

from concurrent.futures import ThreadPoolExecutor

from channels.db import DatabaseSyncToAsync
from django.conf import settings

executor = ThreadPoolExecutor(
    max_workers=settings.WEB_DATABASE_THREADS, thread_name_prefix="database"
)


def database_sync_to_async(func):
    """``channels.db.database_sync_to_async``, run in the pool (usable as a decorator)."""
    return DatabaseSyncToAsync(func, thread_sensitive=False, executor=executor)
