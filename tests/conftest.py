import os
import socket

import pytest

from tests.factories import UserFactory

IN_CI = os.environ.get("CI", "").lower() == "true"


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
