"""The receivers and their pace: long polls that fill the worker's ledger.

A receiver asks for what the pool can start plus a look-ahead (``Pace``): as many messages as
the pool is expected to finish within ``LOOKAHEAD_SECONDS`` (a moving average of task times),
at most a batch per receiver, so that every receiver can have a poll in flight while the pool
runs. Tasks slower than that get no look-ahead, so nothing waits in a prefetch pile while
another worker could run it; fast tasks get full batches, so the pool never waits on a round
trip and every receive and delete carries a full batch. While a queue keeps returning full
batches of fast tasks, up to ``RECEIVERS_PER_QUEUE`` receivers poll it at once. Messages are
counted when they arrive, not while a poll waits, so a receiver long-polling an idle queue
never keeps another queue's messages from the pool. What arrives beyond that room (another
queue's receiver filled it meanwhile) waits briefly, then is handed back. Priority lanes
(``emails-high``) and the other queues each have that room of their own, so a high message is
never kept in its queue by a pool full of default ones (nor, weighted, the reverse), and the
buffer hands each free thread a run of the lane its policy picks (``cloudq.runtime.lanes``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cloudq.core.errors import CloudQError
from cloudq.runtime.health import Health
from cloudq.runtime.lanes import is_high_lane
from cloudq.runtime.ledger import Ledger
from cloudq.transports.base import ReceivedMessage, is_fifo

if TYPE_CHECKING:
    from cloudq.transports.base import Transport

logger = logging.getLogger("cloudq.worker")

#: After a receive error, wait this long (doubling, capped) before polling again.
RECEIVE_BACKOFF_SECONDS = (0.5, 15.0)
#: Longest wait of a received message for room in the pool before it is handed back.
SLOT_WAIT_SECONDS = 2.0
#: Receivers per queue while it keeps returning full batches of fast tasks (one otherwise).
RECEIVERS_PER_QUEUE = 4
#: Weight of the newest sample in the moving average of task times.
PACE_WEIGHT = 0.1
#: Received messages wait for a thread about this long at most, on average (see ``Pace``).
LOOKAHEAD_SECONDS = 0.25
#: How often an idle receiver looks again for room or a busy queue.
IDLE_CHECK_SECONDS = 0.2


class Pace:
    """How many messages to receive ahead of free threads: as many as the pool is expected to
    finish within ``LOOKAHEAD_SECONDS`` (a moving average of task times), at most ``limit``
    (a batch per receiver); 0 until a task has run. Fast tasks get full batches (every
    receive and delete carries 10, and the pool never waits on a round trip); tasks slower
    than that get none, so no message waits behind them while another worker could run it."""

    def __init__(self, concurrency: int, limit: int) -> None:
        self._concurrency = concurrency
        self._limit = limit
        self._task_seconds: float | None = None

    def task_done(self, seconds: float) -> None:
        current = self._task_seconds
        self._task_seconds = seconds if current is None else current + PACE_WEIGHT * (seconds - current)

    @property
    def lookahead(self) -> int:
        if self._task_seconds is None:
            return 0
        expected = self._concurrency * LOOKAHEAD_SECONDS / max(self._task_seconds, 1e-6)
        return min(self._limit, int(expected))


class Receivers:
    """The long polls of one worker, for ``queues``; each ``loop(queue, index)`` is a thread's
    body, ending when ``stopping`` is set."""

    def __init__(
        self,
        transport: Transport,
        ledger: Ledger,
        queues: Sequence[str],
        *,
        concurrency: int,
        wait_seconds: float,
        visibility_timeout: int,
        stopping: threading.Event,
    ) -> None:
        self.transport = transport
        self.ledger = ledger
        self.concurrency = concurrency
        self.wait_seconds = wait_seconds
        self.visibility_timeout = visibility_timeout
        self.stopping = stopping
        self.batch_size = transport.batch_size
        self.pace = Pace(concurrency, RECEIVERS_PER_QUEUE * self.batch_size)
        #: Queues whose last receive returned a full batch: their extra receivers poll too.
        self._full: dict[str, threading.Event] = {name: threading.Event() for name in queues}
        #: Whether a priority lane is among the queues: then each lane counts its own room.
        self._laned = any(is_high_lane(name) for name in queues)
        self._health = Health()

    def loop(self, queue: str, index: int) -> None:
        """Receive from ``queue`` until the stop; ``index`` > 0 polls only a busy queue."""
        backoff = RECEIVE_BACKOFF_SECONDS[0]
        full = self._full[queue]
        while not self.stopping.is_set():
            if index and not (full.wait(timeout=IDLE_CHECK_SECONDS) and self.pace.lookahead):
                continue  # an extra receiver polls only a queue busy with fast tasks
            wanted = self.wanted(timeout=IDLE_CHECK_SECONDS, high=self._lane(queue))
            if not wanted:
                continue
            try:
                messages = self._poll(queue, wanted)
            except CloudQError as exc:
                self._health.failed(f"receive from {queue}", exc)
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, RECEIVE_BACKOFF_SECONDS[1])
                continue
            self._health.ok(f"receive from {queue}")
            backoff = RECEIVE_BACKOFF_SECONDS[0]
            if len(messages) == self.batch_size:
                full.set()
            else:
                full.clear()
            if messages:
                self.dispatch(messages)

    def _poll(self, queue: str, wanted: int) -> list[ReceivedMessage]:
        """One receive, counted in the ledger while it is in flight."""
        self.ledger.poll_started()
        try:
            return self.transport.receive(queue, wanted, self.wait_seconds, self.visibility_timeout)
        finally:
            self.ledger.poll_ended()

    def _lane(self, queue: str) -> bool | None:
        """Whose room a message of ``queue`` takes: a high lane's, the others' (``False``), or
        the whole pool's when the worker serves no lane (``None``)."""
        return is_high_lane(queue) if self._laned else None

    def wanted(self, timeout: float, high: bool | None = None) -> int:
        """Wait until the pool has room for a receive worth making (``high``: the room of the
        high lanes, or of the others; each has the pool's); how many to ask for (0 on timeout
        or stop). With a look-ahead, the room is worth a receive once it holds the look-ahead
        (a full batch for fast tasks); without, once one thread is free."""
        lookahead = self.pace.lookahead
        capacity = self.concurrency + lookahead
        worth = max(1, min(self.batch_size, lookahead))
        if not self.ledger.wait_for_room(capacity - worth, timeout, self.stopping, high):
            return 0
        return max(0, min(self.batch_size, capacity - self.ledger.held(high)))

    def dispatch(self, messages: list[ReceivedMessage]) -> None:
        """Queue each run while the pool has room for it; hand back the rest when stopping,
        or when no room frees up soon (another receiver filled it meanwhile)."""
        self.ledger.count("received", len(messages))
        slot_wait = min(SLOT_WAIT_SECONDS, self.visibility_timeout / 3)
        runs = runs_of(messages)
        # Room for a batch beyond the look-ahead: receivers of several queues may fill it at once.
        lookahead = self.pace.lookahead
        capacity = self.concurrency + lookahead + (self.batch_size if lookahead else 0)
        for position, run in enumerate(runs):
            if not self.ledger.accept(run, capacity - 1, slot_wait, self.stopping, self._lane(run[0].queue)):
                self.hand_back([message for later in runs[position:] for message in later])
                return

    def hand_back(self, messages: list[ReceivedMessage]) -> None:
        """Make fetched-but-unstarted messages visible again at once."""
        for message in messages:
            try:
                self.transport.change_visibility(message.queue, message.receipt_handle, 0)
            except CloudQError as exc:
                logger.warning("could not hand back %s: %s", message.message_id, exc)
        if messages:
            self.ledger.count("handed_back", len(messages))


def runs_of(messages: list[ReceivedMessage]) -> list[list[ReceivedMessage]]:
    """Messages grouped into runs for one slot each: a FIFO queue's messages of one message
    group (SQS hands out several of a group at once, in order) form one run, so two of a group
    never run at once; any other message is a run of its own."""
    runs: list[list[ReceivedMessage]] = []
    by_group: dict[tuple[str, str], list[ReceivedMessage]] = {}
    for message in messages:
        if message.group_id is None or not is_fifo(message.queue):
            runs.append([message])
        elif (message.queue, message.group_id) in by_group:
            by_group[(message.queue, message.group_id)].append(message)
        else:
            runs.append(by_group.setdefault((message.queue, message.group_id), [message]))
    return runs
