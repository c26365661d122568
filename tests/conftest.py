import os
import shutil
import socket
import threading

import pytest

from tests.factories import UserFactory

IN_CI = os.environ.get("CI", "").lower() == "true"
# The browser tests drive Debian's Chromium with Playwright (never a browser of Playwright's own).
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def service_reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def require_service(name: str, port: int) -> None:
    """Skip on a developer machine without the service; fail in CI, where it must be there."""
    if service_reachable(port):
        return
    message = f"{name} is not reachable on 127.0.0.1:{port}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: tests that need it fail instead of skipping)")
    pytest.skip(message)


def require_chromium() -> None:
    if shutil.which(CHROMIUM) is None:
        message = f"Chromium is not installed at {CHROMIUM} (Debian: apt-get install chromium)"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: tests that need it fail instead of skipping)")
        pytest.skip(message)


@pytest.fixture(scope="module")
def chromium():
    """A headless Chromium, with the flags a machine without internet access needs (no
    background networking, no component updates or sync)."""
    from playwright.sync_api import sync_playwright

    require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def customer(db):
    return UserFactory(username="alice")


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks):
    """Run the work a service enqueues after commit (eagerly, with the test settings)."""

    def run(call, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return call(*args, **kwargs)

    return run


@pytest.fixture
async def worker_thread_connections():
    """Close the database connections that consumer code opened in other threads: Channels'
    sync thread (the tests' own ``database_sync_to_async``) and the consumers' pool
    (``procurement_system.database``). They would otherwise outlive the test and keep
    PostgreSQL from dropping the test database.
    """
    from channels.db import database_sync_to_async
    from django.conf import settings
    from django.db import connections

    from procurement_system.database import executor

    yield
    await database_sync_to_async(connections.close_all)()
    # The consumers' own pool: one close per thread, each held at a barrier until every thread
    # has one, so that no thread takes two and leaves another's connection open.
    barrier = threading.Barrier(settings.WEB_DATABASE_THREADS)

    def close_this_threads() -> None:
        connections.close_all()
        barrier.wait(timeout=10)

    closing = [executor.submit(close_this_threads) for _ in range(settings.WEB_DATABASE_THREADS)]
    for future in closing:
        future.result()
