"""The sockets' database work runs in a pool of threads (``procurement_system/database.py``)."""

import asyncio
import threading

import pytest
from django.conf import settings
from django.db import connection

from procurement_system.database import database_sync_to_async, executor


@pytest.mark.django_db(transaction=True)
async def test_calls_from_different_sockets_run_at_the_same_time():
    """Two calls meet at a barrier: only possible when they run in two threads at once (in
    Channels' one database thread the first would wait there for ever, and time out)."""
    barrier = threading.Barrier(2, timeout=5)

    @database_sync_to_async
    def meet() -> str:
        barrier.wait()
        return threading.current_thread().name

    names = await asyncio.gather(meet(), meet())
    assert len(set(names)) == 2
    assert all(name.startswith("database") for name in names)


@pytest.mark.django_db(transaction=True)
async def test_each_thread_has_its_own_connection_and_the_pool_is_bounded():
    barrier = threading.Barrier(2, timeout=5)

    @database_sync_to_async
    def connection_in_use() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        barrier.wait()
        return id(connection.connection)

    first, second = await asyncio.gather(connection_in_use(), connection_in_use())
    assert first != second
    assert executor._max_workers == settings.WEB_DATABASE_THREADS
