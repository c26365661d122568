import pytest

from tests.conftest import require_service
from tests.e2e.stack import LIFECYCLE_ENV, LIFECYCLE_PROCESSES, LIFECYCLE_SETUP, SETUP, Stack

DEMO_USERS = ("alice", "victor", "vera", "vince")
# The shared stack's tests leave pickups offered or in progress (a thousand sockets' worth, in
# places); room for all of them, so no test waits on a vendor that an earlier one filled up.
ROOMY_VENDORS = (
    "shell",
    "-c",
    "from vendors.models import Vendor; Vendor.objects.update(capacity=1000)",
)


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    require_service("RabbitMQ", 5672)
    require_service("Redis", 6379)
    stack = Stack(tmp_path_factory.mktemp("stack"), setup=(*SETUP, ROOMY_VENDORS))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def tokens(stack):
    return stack.tokens(*DEMO_USERS)


@pytest.fixture(scope="module")
def lifecycle_stack(tmp_path_factory):
    """Every process ``make run`` starts but Flower, beat included, with the timers short.

    A stack of its own (database, queues, channel layer), so its sweeps never touch the pickups
    of the ``stack`` the other tests use.
    """
    require_service("RabbitMQ", 5672)
    require_service("Redis", 6379)
    stack = Stack(
        tmp_path_factory.mktemp("lifecycle"),
        processes=LIFECYCLE_PROCESSES,
        env=LIFECYCLE_ENV,
        setup=LIFECYCLE_SETUP,
    )
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def lifecycle_tokens(lifecycle_stack):
    return lifecycle_stack.tokens(*DEMO_USERS)
