"""``memory://``: an in-process broker with SQS's semantics.

Real visibility timeouts, receive counts, delays, FIFO groups and deduplication, and a
dead-letter queue per queue, so tests on it mean something. Queues are created on first use
(there is nothing to provision in a process's memory).

Every wall-clock read (visibility, delays, the deduplication window) is the injected
``Clock``, so a test moves a ``ManualClock`` instead of sleeping. A long poll still waits on
the real clock (a ``Condition``): a test of a manual clock receives with ``wait_seconds=0``.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from cloudq.core.clock import SYSTEM_CLOCK, Clock
from cloudq.core.ids import random_uuid
from cloudq.core.naming import DEFAULT_VISIBILITY_TIMEOUT
from cloudq.transports.base import (
    SQS_LIMITS,
    OutgoingMessage,
    QueueStats,
    ReceivedMessage,
    SendResult,
    check_size,
    dead_letter_attributes,
    dead_letter_queue_name,
    fifo_deduplication_id,
    is_fifo,
    refused_body,
    require_sent,
)


@dataclass
class _Entry:
    message_id: str
    body: str
    attributes: dict[str, str]
    group_id: str | None
    sent_at: float
    visible_at: float
    receive_count: int = 0
    receipt_handle: str = ""


@dataclass
class _Queue:
    entries: list[_Entry] = field(default_factory=list)
    #: FIFO: deduplication id -> (when its window ends, the id of the message sent with it),
    #: in send order, so the expired ones are at the front.
    seen: dict[str, tuple[float, str]] = field(default_factory=dict)

    def first_sent_as(self, deduplication_id: str, now: float) -> str | None:
        """The message id sent with ``deduplication_id`` within the window, or ``None``;
        forgets the ids whose window has ended."""
        while self.seen:
            oldest, (until, _) = next(iter(self.seen.items()))
            if until > now:
                break
            del self.seen[oldest]
        found = self.seen.get(deduplication_id)
        return found[1] if found is not None and found[0] > now else None


class MemoryTransport:
    """Thread-safe, in-process queues that behave like SQS."""

    max_delay_seconds = SQS_LIMITS.max_delay_seconds
    max_visibility_seconds = SQS_LIMITS.max_visibility_seconds
    batch_size = SQS_LIMITS.batch_size
    visibility_timeouts = True
    #: Acks batched, as on SQS.
    immediate_acks = False
    #: FIFO queues deduplicate for SQS's 5 minutes.
    deduplication = True

    def __init__(
        self,
        visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT,
        max_message_bytes: int = SQS_LIMITS.max_message_bytes,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.visibility_timeout = visibility_timeout
        self.max_message_bytes = max_message_bytes
        self.clock = clock
        self._queues: dict[str, _Queue] = {}
        self._changed = threading.Condition()
        self._handles = itertools.count()

    def describe(self) -> str:
        return "memory (in this process)"

    def _queue(self, name: str) -> _Queue:
        return self._queues.setdefault(name, _Queue())

    def check_queues(self, queues: Sequence[str]) -> None:
        """Memory queues always exist."""

    def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        for out in messages:
            check_size(out.body, self.max_message_bytes)
        now = self.clock.time()
        with self._changed:
            q = self._queue(queue)
            results = [self._add(q, out, now, is_fifo(queue)) for out in messages]
            self._changed.notify_all()
        return results

    def _add(self, q: _Queue, out: OutgoingMessage, now: float, fifo: bool) -> SendResult:
        """Enqueue one message; a FIFO repeat within the window is answered with the first
        message's id and not enqueued, as SQS does."""
        refused = refused_body(out.body)
        if refused is not None:
            return SendResult(error=refused)
        deduplication_id = fifo_deduplication_id(out) if fifo else None
        if deduplication_id is not None:
            first = q.first_sent_as(deduplication_id, now)
            if first is not None:
                return SendResult(first)
        delay = min(max(out.delay_seconds, 0), self.max_delay_seconds)
        entry = _Entry(
            message_id=random_uuid(),
            body=out.body,
            attributes=dict(out.attributes),
            group_id=out.group_id,
            sent_at=now,
            visible_at=now + delay,
        )
        q.entries.append(entry)
        if deduplication_id is not None:
            q.seen[deduplication_id] = (now + SQS_LIMITS.deduplication_seconds, entry.message_id)
        return SendResult(entry.message_id)

    def receive(
        self,
        queue: str,
        max_messages: int = 10,
        wait_seconds: float = 20.0,
        visibility_timeout: int | None = None,
    ) -> list[ReceivedMessage]:
        hide_for = self.visibility_timeout if visibility_timeout is None else visibility_timeout
        # The long poll's own deadline is real time: it is a wait on the Condition.
        deadline = time.monotonic() + wait_seconds
        with self._changed:
            while True:
                got = self._take(queue, min(max_messages, SQS_LIMITS.batch_size), hide_for)
                remaining = deadline - time.monotonic()
                if got or remaining <= 0:
                    return got
                # Wake on new messages, or when a hidden one may have become visible.
                self._changed.wait(min(remaining, self._next_visible_in(queue)))

    def _next_visible_in(self, queue: str) -> float:
        now = self.clock.time()
        pending = [e.visible_at - now for e in self._queue(queue).entries if e.visible_at > now]
        return max(min(pending, default=1.0), 0.005)

    def _take(self, queue: str, limit: int, hide_for: int) -> list[ReceivedMessage]:
        now = self.clock.time()
        q = self._queue(queue)
        fifo = is_fifo(queue)
        busy_groups = {e.group_id for e in q.entries if fifo and e.visible_at > now}
        got: list[ReceivedMessage] = []
        for entry in q.entries:
            if len(got) >= limit:
                break
            if entry.visible_at > now or (fifo and entry.group_id in busy_groups):
                continue
            entry.receive_count += 1
            entry.receipt_handle = f"{entry.message_id}#{next(self._handles)}"
            entry.visible_at = now + hide_for
            got.append(
                ReceivedMessage(
                    queue=queue,
                    message_id=entry.message_id,
                    receipt_handle=entry.receipt_handle,
                    body=entry.body,
                    receive_count=entry.receive_count,
                    sent_timestamp_ms=int(entry.sent_at * 1000),
                    attributes=dict(entry.attributes),
                    group_id=entry.group_id,
                )
            )
        return got

    def ack(self, queue: str, receipt_handles: Sequence[str]) -> None:
        handles = set(receipt_handles)
        with self._changed:
            q = self._queue(queue)
            q.entries = [e for e in q.entries if e.receipt_handle not in handles]
            self._changed.notify_all()

    def change_visibility(self, queue: str, receipt_handle: str, visibility_timeout: int) -> None:
        with self._changed:
            for entry in self._queue(queue).entries:
                if entry.receipt_handle == receipt_handle:
                    entry.visible_at = self.clock.time() + visibility_timeout
                    self._changed.notify_all()
                    return

    def extend_visibility(self, queue: str, receipt_handles: Sequence[str], visibility_timeout: int) -> None:
        for handle in receipt_handles:
            self.change_visibility(queue, handle, visibility_timeout)

    def dead_letter(self, message: ReceivedMessage, reason: str) -> str:
        attributes = dead_letter_attributes(message, reason)
        dlq = dead_letter_queue_name(message.queue)
        # Deduplicated by the original's id, as on SQS: two messages of one body both get a copy.
        copy_of = OutgoingMessage(message.body, 0, attributes, message.group_id, message.message_id)
        [copy] = require_sent(dlq, self.send(dlq, [copy_of]))
        self.ack(message.queue, [message.receipt_handle])
        return copy

    def stats(self, queue: str) -> QueueStats:
        now = self.clock.time()
        with self._changed:
            entries = self._queue(queue).entries
            in_flight = sum(1 for e in entries if e.visible_at > now and e.receive_count > 0)
            delayed = sum(1 for e in entries if e.visible_at > now and e.receive_count == 0)
            oldest = now - min(e.sent_at for e in entries) if entries else None
            return QueueStats(len(entries) - in_flight - delayed, in_flight, delayed, oldest)

    def close(self) -> None:
        """Nothing to release."""
