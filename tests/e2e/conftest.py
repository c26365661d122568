import pytest

from tests.conftest import require_service
from tests.e2e.stack import Stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    require_service("RabbitMQ", 5672)
    require_service("Redis", 6379)
    stack = Stack(tmp_path_factory.mktemp("stack"))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def tokens(stack):
    return {name: stack.token(name) for name in ("alice", "victor", "vera", "vince")}
