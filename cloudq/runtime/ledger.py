"""The worker's in-flight ledger: every message a worker holds, behind its one lock.

A received message is *queued* (on the buffer, waiting for a task thread), then *running*,
then settled; an acknowledged one waits in the *acks* until an acker deletes it. Whoever takes
a message out of ``queued`` owns it: a task thread (to run it) or the stop (to hand it back),
never both. Taking a running message off the ledger and queueing its delete is one step under
the lock, so a stopping worker that sees nothing running has every delete to flush.

No threads are started here and nothing blocks but the waits named ``wait_…``: the parts that
share the ledger (receivers, task threads, ackers, heartbeat) can be tested by calling it.
"""

from __future__ import annotations

import queue as queue_module
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, fields

from cloudq.core.flow import LanePolicy
from cloudq.runtime.lanes import LaneBuffer, is_high_lane
from cloudq.transports.base import ReceivedMessage


@dataclass
class Running:
    """A message whose task runs, since ``started`` (monotonic), with its task's timeout."""

    message: ReceivedMessage
    started: float
    timeout: float | None = None


@dataclass
class WorkerStats:
    """Messages by what became of them; ``acked`` counts deletes the broker confirmed."""

    received: int = 0
    acked: int = 0
    retried: int = 0
    dead_lettered: int = 0
    resent: int = 0
    handed_back: int = 0


STAT_NAMES = frozenset(field.name for field in fields(WorkerStats))


def _key(message: ReceivedMessage) -> tuple[str, str]:
    """A held message's key: a receipt handle is unique within its queue only (Redis numbers
    each queue's deliveries from 1), so two queues' messages, a lane's and its queue's, may
    share one."""
    return message.queue, message.receipt_handle


class Ledger:
    """What a worker holds, under one lock. ``batch_size``: deletes per broker call;
    ``lanes``: which lane's run a task thread takes next (``cloudq.runtime.lanes``), for a
    worker serving a priority lane (``None``: first come, first served)."""

    def __init__(self, batch_size: int, lanes: LanePolicy | None = None) -> None:
        self.batch_size = batch_size
        self.stats = WorkerStats()
        self._lock = threading.Lock()
        #: Notified when messages held fall: a task ends or a message is handed back.
        self._room = threading.Condition(self._lock)
        #: Notified when a batch of deletes is full, and at close.
        self._ack_ready = threading.Condition(self._lock)
        #: The most messages held at which a waiter on ``_room`` can go on (-1: none waits).
        self._wake_at = -1
        self._running: dict[tuple[str, str], Running] = {}
        #: Received, not started yet ((queue, receipt handle) → message).
        self._queued: dict[tuple[str, str], ReceivedMessage] = {}
        self._acks: dict[str, list[str]] = defaultdict(list)
        #: Set at shutdown: no more messages are accepted.
        self._closed = False
        #: Receives in flight, for the log line of a stop that abandons them.
        self._polls = 0
        #: Of the messages held, those of a priority lane: each lane's receivers have the
        #: pool's room of their own (``cloudq.runtime.lanes``). And the waiters for a lane's
        #: room, woken at every release (``_wake_at`` is the whole pool's).
        self._held_high = 0
        self._lane_waiters = 0
        #: Runs accepted and not taken by a task thread, by lane (``None`` stops one).
        self._laned = lanes is not None
        #: Without lanes, the runs queue in a plain FIFO (nothing to pick between).
        self._buffer: LaneBuffer | queue_module.SimpleQueue[list[ReceivedMessage] | None] = (
            queue_module.SimpleQueue() if lanes is None else LaneBuffer(lanes)
        )

    # -- counts --------------------------------------------------------------------------

    def held(self, high: bool | None = None) -> int:
        """Messages received and not settled: running or queued; of the high lanes only
        (``high=True``), or of the others (``False``)."""
        with self._lock:
            return self._held(high)

    def _high(self, messages: list[ReceivedMessage]) -> int:
        """How many of ``messages`` are of a priority lane (none without lanes)."""
        if not self._laned:
            return 0
        return sum(is_high_lane(message.queue) for message in messages)

    def _held(self, high: bool | None = None) -> int:
        total = len(self._running) + len(self._queued)
        if high is None:
            return total
        return self._held_high if high else total - self._held_high

    def running_count(self) -> int:
        with self._lock:
            return len(self._running)

    def queued(self) -> list[ReceivedMessage]:
        """The received messages waiting for a task thread."""
        with self._lock:
            return list(self._queued.values())

    def count(self, stat: str, n: int = 1) -> None:
        """Add ``n`` to one of the ``WorkerStats`` counts."""
        if stat not in STAT_NAMES:
            raise ValueError(f"no worker stat {stat!r}")
        with self._lock:
            setattr(self.stats, stat, getattr(self.stats, stat) + n)

    def poll_started(self) -> None:
        with self._lock:
            self._polls += 1

    def poll_ended(self) -> None:
        with self._lock:
            self._polls -= 1

    def polls(self) -> int:
        """Receives in flight now."""
        with self._lock:
            return self._polls

    # -- room ----------------------------------------------------------------------------

    def wait_for_room(
        self, at_most: int, timeout: float, stopping: threading.Event, high: bool | None = None
    ) -> bool:
        """Wait until at most ``at_most`` messages are held (of the high lanes, or of the
        others: ``held``) (``True``), ``timeout`` passes or ``stopping`` is set (``False``).
        Task ends wake the waiters only once the fewest held that any waiter asked for is
        reached (not on every task's end)."""
        with self._room:
            return self._wait_held(at_most, timeout, stopping, high) and not stopping.is_set()

    def _wait_held(
        self, at_most: int, timeout: float, stopping: threading.Event, high: bool | None = None
    ) -> bool:
        deadline = time.monotonic() + timeout
        while self._held(high) > at_most and not stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._wake_at = max(self._wake_at, at_most)
            self._lane_waiters += high is not None
            try:
                self._room.wait(remaining)
            finally:
                self._lane_waiters -= high is not None
        return True

    def wake(self) -> None:
        """Wake every waiter for room (a stop)."""
        with self._room:
            self._room.notify_all()

    def _released(self) -> None:
        """Under the lock: fewer messages are held; wake the waiters it may concern."""
        if self._held() <= self._wake_at or self._lane_waiters:
            self._wake_at = -1
            self._room.notify_all()

    # -- queued → running → settled -----------------------------------------------------

    def accept(
        self,
        run: list[ReceivedMessage],
        at_most: int,
        timeout: float,
        stopping: threading.Event,
        high: bool | None = None,
    ) -> bool:
        """Queue ``run`` for a task thread once at most ``at_most`` messages are held (of its
        lane: ``held``); ``False`` (not queued: the caller hands it back) on timeout, stop or
        close."""
        with self._room:
            accepted = self._wait_held(at_most, timeout, stopping, high)
            if not accepted or stopping.is_set() or self._closed:
                return False
            self._queued.update((_key(message), message) for message in run)
            self._held_high += self._high(run)
            self._buffer.put(run)
            return True

    def next_run(self) -> list[ReceivedMessage] | None:
        """The next queued run for a task thread (blocks); ``None`` tells the thread to end."""
        return self._buffer.get()

    def start(self, message: ReceivedMessage, now: float) -> Running | None:
        """Move a queued message to running; ``None`` if it is no longer queued (handed back)."""
        with self._lock:
            if self._queued.pop(_key(message), None) is None:
                return None
            running = self._running[_key(message)] = Running(message, now)
            return running

    def finish(self, message: ReceivedMessage, *, acknowledged: bool) -> None:
        """Take a running message off the ledger; an acknowledged one's delete is queued in
        the same step."""
        with self._room:
            del self._running[_key(message)]
            self._held_high -= self._high([message])
            if acknowledged:
                pending = self._acks[message.queue]
                pending.append(message.receipt_handle)
                if len(pending) >= self.batch_size:
                    self._ack_ready.notify()
            self._released()

    def unqueue(self, messages: list[ReceivedMessage]) -> list[ReceivedMessage]:
        """Those of ``messages`` still queued, taken off the ledger."""
        with self._room:
            taken = [message for message in messages if self._queued.pop(_key(message), None)]
            self._held_high -= self._high(taken)
            self._released()
        return taken

    def take_queued(self) -> list[ReceivedMessage]:
        """Every queued message, taken off the ledger (their task threads skip them)."""
        with self._room:
            taken, self._queued = list(self._queued.values()), {}
            self._held_high -= self._high(taken)
            self._released()
        return taken

    def close(self, task_threads: int) -> None:
        """Accept no more messages; wake the ackers; end ``task_threads`` task threads once
        they reach the end of the buffer."""
        with self._lock:
            self._closed = True
            self._ack_ready.notify_all()
        for _ in range(task_threads):
            self._buffer.put(None)

    # -- deletes -------------------------------------------------------------------------

    def wait_for_acks(self, timeout: float) -> None:
        """Wait until a batch of deletes is full, the ledger closes or ``timeout`` passes."""
        with self._lock:
            if not self._full_acks() and not self._closed:
                self._ack_ready.wait(max(0.0, timeout))

    def _full_acks(self) -> bool:
        return any(len(handles) >= self.batch_size for handles in self._acks.values())

    def take_full_acks(self) -> tuple[str, list[str]] | None:
        """One full batch of pending deletes (queue, receipt handles), or ``None``."""
        size = self.batch_size
        with self._lock:
            for queue, handles in self._acks.items():
                if len(handles) >= size:
                    batch, self._acks[queue] = handles[:size], handles[size:]
                    return queue, batch
            return None

    def take_acks(self) -> list[tuple[str, list[str]]]:
        """Every pending delete now, in batches of at most ``batch_size`` (those queued
        meanwhile wait for a full batch or the next take)."""
        with self._lock:
            pending, self._acks = self._acks, defaultdict(list)
        size = self.batch_size
        return [
            (queue, handles[start : start + size])
            for queue, handles in pending.items()
            for start in range(0, len(handles), size)
        ]

    # -- heartbeat -----------------------------------------------------------------------

    def due_for_extension(self, now: float) -> dict[str, list[str]]:
        """Receipt handles to keep invisible, by queue: running messages within their task's
        timeout, and queued ones. A task past its timeout is left to reappear."""
        due: dict[str, list[str]] = defaultdict(list)
        with self._lock:
            running = list(self._running.values())
            waiting = list(self._queued.values())
        for item in running:
            if item.timeout is None or now - item.started <= item.timeout:
                due[item.message.queue].append(item.message.receipt_handle)
        for message in waiting:
            due[message.queue].append(message.receipt_handle)
        return dict(due)

    def overrun(self, now: float, grace: float) -> int:
        """How many running tasks are more than ``grace`` seconds past their timeout."""
        with self._lock:
            running = list(self._running.values())
        return sum(
            1 for item in running if item.timeout is not None and now - item.started > item.timeout + grace
        )
