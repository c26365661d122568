"""The publisher reads the broker URL as Celery does, and bounds every wait."""

import pytest

from procurement_system.event_bus import connection_parameters


@pytest.mark.parametrize(
    ("url", "vhost", "host", "port"),
    [
        ("amqp://guest:guest@127.0.0.1:5672//", "/", "127.0.0.1", 5672),
        ("amqp://guest:guest@rabbit/", "/", "rabbit", 5672),
        ("amqp://guest:guest@rabbit", "/", "rabbit", 5672),
        ("amqp://guest:guest@rabbit/%2F", "/", "rabbit", 5672),
        ("amqp://guest:guest@rabbit:5673/procurement", "procurement", "rabbit", 5673),
        ("pyamqp://guest:guest@rabbit/a%2Fb", "a/b", "rabbit", 5672),
    ],
)
def test_broker_urls_are_read_as_celery_reads_them(url, vhost, host, port):
    parameters = connection_parameters(url, timeout=2.0)
    assert (parameters.virtual_host, parameters.host, parameters.port) == (vhost, host, port)
    assert parameters.credentials.username == "guest"


def test_every_wait_is_bounded_and_there_is_one_attempt():
    parameters = connection_parameters("amqp://guest:guest@127.0.0.1:5672//", timeout=1.5)
    assert parameters.connection_attempts == 1
    assert parameters.socket_timeout == parameters.stack_timeout == 1.5
    assert parameters.blocked_connection_timeout == 1.5
    assert parameters.heartbeat == 0  # a kept connection idles between uses
