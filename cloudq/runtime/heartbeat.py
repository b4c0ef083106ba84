"""The visibility heartbeat: keeps the messages a worker holds invisible.

While a task runs, and while a received message waits for a thread, the heartbeat extends its
visibility every third of the visibility timeout (one batched call per queue), so a short queue
visibility timeout gives fast recovery from a dead worker without long tasks running twice. A
task past its timeout is no longer extended: its message reappears and the retry policy takes
over. A transport without visibility timeouts (RabbitMQ) extends nothing. Each beat also
renews what else the running tasks hold (``renew``: the concurrency leases of
``cloudq.runtime.flow``).
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

#: The shortest interval between two beats.
MIN_INTERVAL_SECONDS = 0.5


class Heartbeat:
    """Extends the visibility of what ``ledger`` holds to ``visibility_timeout`` seconds."""

    def __init__(
        self,
        transport: Transport,
        ledger: Ledger,
        visibility_timeout: int,
        renew: Callable[[], None] | None = None,
    ) -> None:
        self.transport = transport
        self.renew = renew
        self.ledger = ledger
        self.visibility_timeout = visibility_timeout
        self.interval = max(visibility_timeout / 3, MIN_INTERVAL_SECONDS)
        self._health = Health()

    def loop(self, stopped: threading.Event) -> None:
        """Beat every ``interval`` until ``stopped``."""
        while not stopped.wait(self.interval):
            self.beat(time.monotonic())

    def beat(self, now: float) -> None:
        """One round: extend every message due at ``now`` (monotonic), one call per queue,
        then renew the rest (``renew``)."""
        if self.renew is not None:
            self.renew()
        if not self.transport.visibility_timeouts:
            return
        for queue, handles in self.ledger.due_for_extension(now).items():
            try:
                self.transport.extend_visibility(queue, handles, self.visibility_timeout)
            except CloudQError as exc:
                self._health.failed(f"heartbeat on {queue}", exc)
                continue
            self._health.ok(f"heartbeat on {queue}")
