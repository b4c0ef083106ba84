"""Redis engines map redis-py errors to cloudq errors; none reaches the caller."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from cloudq.backends.redis import RedisBackend
from cloudq.core.errors import BackendError, TransportError
from cloudq.transports import OutgoingMessage
from cloudq.transports.redis import RedisTransport
from cloudq_emulator.server import free_port


def _closed() -> redis.Redis:
    # No client-side retries: the test is about the mapping, not redis-py's backoff.
    no_retry = Retry(NoBackoff(), 0)
    return redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1, retry=no_retry)


@pytest.mark.parametrize(
    "call",
    [
        lambda t: t.check_queues(["q"]),
        lambda t: t.send("q", [OutgoingMessage("m")]),
        lambda t: t.receive("q", 10, wait_seconds=0),
        lambda t: t.ack("q", ["1:1"]),
    ],
)
def test_an_unreachable_redis_is_a_transport_error(call: Callable[[RedisTransport], object]) -> None:
    with pytest.raises(TransportError, match="Redis broker failed") as raised:
        call(RedisTransport(_closed(), "x-"))
    assert isinstance(raised.value.__cause__, redis.RedisError)


def test_an_unreachable_redis_is_a_backend_error() -> None:
    with pytest.raises(BackendError, match="Redis result backend failed"):
        RedisBackend(_closed(), "x-").get("t")
