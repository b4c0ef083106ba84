"""The acker: deletes of acknowledged messages, batched.

Deletes are batched (up to the transport's batch size per call) by ``ACKERS`` threads, each
batch sent as soon as it is full, the rest at least every ``ACK_FLUSH_SECONDS``; a transport
that wants ``immediate_acks`` (RabbitMQ) gets each ack as its task ends (the worker flushes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from cloudq.core.errors import CloudQError
from cloudq.runtime.health import Health
from cloudq.runtime.ledger import Ledger

if TYPE_CHECKING:
    from cloudq.transports.base import Transport

#: How often the first acker flushes partial batches of deletes.
ACK_FLUSH_SECONDS = 0.05
#: Threads sending full batches of deletes (the first also sends partial ones): as many as
#: receivers, so deletes keep up with the receives in flight.
ACKERS = 4
#: How long an acker other than the first waits for a full batch before looking again.
ACKER_IDLE_SECONDS = 0.2


class Acker:
    """Sends the ledger's pending deletes; ``on_flush`` runs with each periodic flush (the EMF
    lines go out with the deletes)."""

    def __init__(
        self, transport: Transport, ledger: Ledger, on_flush: Callable[[], None] = lambda: None
    ) -> None:
        self.transport = transport
        self.ledger = ledger
        self.on_flush = on_flush
        self._health = Health()

    def loop(self, index: int, stopped: threading.Event) -> None:
        """Send each full batch as soon as it is full (the ackers share them, woken one per
        full batch, so deletes keep up with receives that are in flight several at a time);
        the first acker (``index`` 0) also sends partial batches every ``ACK_FLUSH_SECONDS``."""
        flushed = time.monotonic()
        while not stopped.is_set():
            wait = ACKER_IDLE_SECONDS if index else flushed + ACK_FLUSH_SECONDS - time.monotonic()
            self.ledger.wait_for_acks(wait)
            self.send_full()
            if not index and time.monotonic() >= flushed + ACK_FLUSH_SECONDS:
                self.flush()
                self.on_flush()
                flushed = time.monotonic()

    def send_full(self) -> None:
        """Send every full batch pending now."""
        while batch := self.ledger.take_full_acks():
            self.send(*batch)

    def flush(self) -> None:
        """Send every delete pending now, partial batches included."""
        for queue, handles in self.ledger.take_acks():
            self.send(queue, handles)

    def send(self, queue: str, handles: list[str]) -> None:
        try:
            self.transport.ack(queue, handles)
        except CloudQError as exc:
            # Not deleted: the messages reappear and the idempotency claim acks them.
            self._health.failed(f"delete on {queue}", exc)
            return
        self.ledger.count("acked", len(handles))  # acknowledged: deleted on the broker
        self._health.ok(f"delete on {queue}")
