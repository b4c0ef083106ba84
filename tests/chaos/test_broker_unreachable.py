"""``.delay()`` in a web request when the broker cannot be reached: it raises within the send
path's own timeouts and attempts (``send_timeout``, ``send_attempts``) instead of holding the
request for the worker's long timeouts and five attempts."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from cloudq import CloudQ
from cloudq.core.errors import TransportError
from tests.chaos.fault_proxy import FaultProxy
from tests.tasks import make_app

#: Far below what the old send path took (five attempts, 5 s connect, 30 s read timeouts).
PROMPT_FAILURE_SECONDS = 10.0


class BlackHole:
    """A port on 127.0.0.1 that accepts connections and never answers (a hung endpoint, a
    dead link behind a load balancer); it counts the connections, one per attempt."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.connections = 0
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            self._held.append(connection)

    def close(self) -> None:
        self._listener.close()
        for connection in self._held:
            connection.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


def _app(endpoint: str, monkeypatch: pytest.MonkeyPatch, **settings: object) -> CloudQ:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    return make_app("unreachable", broker=f"sqs://?endpoint_url={endpoint}", backend=None, **settings)


@pytest.mark.parametrize(("settings", "attempts"), [({}, 2), ({"send_attempts": 1, "send_timeout": 0.5}, 1)])
def test_delay_to_a_hung_broker_raises_after_the_send_paths_attempts(
    black_hole: BlackHole, monkeypatch: pytest.MonkeyPatch, settings: dict[str, object], attempts: int
) -> None:
    # Given a web process whose broker endpoint hangs (its first .delay() resolves the queue URL)
    app = _app(f"http://127.0.0.1:{black_hole.port}", monkeypatch, **settings)
    app.transport.describe()  # the clients are built before the clock starts
    # When a request enqueues, then it fails after the send path's attempts, promptly
    started = time.monotonic()
    with pytest.raises(TransportError, match="SQS unreachable"):
        app.tasks["add"].delay(1, 2)
    took = time.monotonic() - started
    print(
        f"\n[unreachable] hung broker: .delay() raised after {took:.2f}s, {black_hole.connections} attempt(s)"
    )
    assert black_hole.connections == attempts
    assert took < PROMPT_FAILURE_SECONDS


def test_delay_fails_promptly_when_a_working_broker_goes_silent(
    chaos_app: CloudQ, fault_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a web process that has enqueued through the proxy (queue URL known, connections open)
    app = make_app(chaos_app.name, broker=f"sqs://?endpoint_url={fault_proxy.endpoint_url}")
    assert app.tasks["add"].delay(1, 2).id
    # When the link goes dead (nothing answers any more)
    fault_proxy.cut()
    started = time.monotonic()
    with pytest.raises(TransportError):
        app.tasks["add"].delay(1, 2)
    took = time.monotonic() - started
    fault_proxy.restore()
    print(f"\n[unreachable] silent broker: .delay() raised after {took:.2f}s")
    # Then .delay() raised within the send path's timeouts, not the worker's 30 s read timeout
    assert took < PROMPT_FAILURE_SECONDS
