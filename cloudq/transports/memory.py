"""``memory://``: an in-process broker with SQS's semantics.

Real visibility timeouts, receive counts, delays, FIFO groups and a dead-letter queue per
queue, so tests on it mean something. Queues are created on first use (there is nothing to
provision in a process's memory).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from cloudq.clock import SYSTEM_CLOCK, Clock
from cloudq.ids import random_uuid
from cloudq.infra.naming import DEFAULT_VISIBILITY_TIMEOUT
from cloudq.transports.base import (
    OutgoingMessage,
    QueueStats,
    ReceivedMessage,
    SendResult,
    check_size,
    dead_letter_attributes,
    dead_letter_queue_name,
    is_fifo,
    refused_body,
    require_sent,
)

# The memory engine keeps SQS's limits: the SQS transport owns them.
from cloudq.transports.sqs import (
    SQS_BATCH,
    SQS_MAX_DELAY_SECONDS,
    SQS_MAX_MESSAGE_BYTES,
    SQS_MAX_VISIBILITY_SECONDS,
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


class MemoryTransport:
    """Thread-safe, in-process queues that behave like SQS."""

    max_delay_seconds = SQS_MAX_DELAY_SECONDS
    max_visibility_seconds = SQS_MAX_VISIBILITY_SECONDS
    batch_size = SQS_BATCH
    visibility_timeouts = True
    #: Acks batched, as on SQS.
    immediate_acks = False

    def __init__(
        self,
        visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT,
        max_message_bytes: int = SQS_MAX_MESSAGE_BYTES,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.clock = clock
        self.visibility_timeout = visibility_timeout
        self.max_message_bytes = max_message_bytes
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
        now = time.time()
        results: list[SendResult] = []
        with self._changed:
            q = self._queue(queue)
            for out in messages:
                refused = refused_body(out.body)
                if refused is not None:
                    results.append(SendResult(error=refused))
                    continue
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
                results.append(SendResult(entry.message_id))
            self._changed.notify_all()
        return results

    def receive(
        self,
        queue: str,
        max_messages: int = 10,
        wait_seconds: float = 20.0,
        visibility_timeout: int | None = None,
    ) -> list[ReceivedMessage]:
        hide_for = self.visibility_timeout if visibility_timeout is None else visibility_timeout
        deadline = time.monotonic() + wait_seconds
        with self._changed:
            while True:
                got = self._take(queue, min(max_messages, SQS_BATCH), hide_for)
                remaining = deadline - time.monotonic()
                if got or remaining <= 0:
                    return got
                # Wake on new messages, or when a hidden one may have become visible.
                self._changed.wait(min(remaining, self._next_visible_in(queue)))

    def _next_visible_in(self, queue: str) -> float:
        now = time.time()
        pending = [e.visible_at - now for e in self._queue(queue).entries if e.visible_at > now]
        return max(min(pending, default=1.0), 0.005)

    def _take(self, queue: str, limit: int, hide_for: int) -> list[ReceivedMessage]:
        now = time.time()
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
                    entry.visible_at = time.time() + visibility_timeout
                    self._changed.notify_all()
                    return

    def extend_visibility(self, queue: str, receipt_handles: Sequence[str], visibility_timeout: int) -> None:
        for handle in receipt_handles:
            self.change_visibility(queue, handle, visibility_timeout)

    def dead_letter(self, message: ReceivedMessage, reason: str) -> str:
        attributes = dead_letter_attributes(message, reason)
        dlq = dead_letter_queue_name(message.queue)
        [copy] = require_sent(
            dlq, self.send(dlq, [OutgoingMessage(message.body, 0, attributes, message.group_id)])
        )
        self.ack(message.queue, [message.receipt_handle])
        return copy

    def stats(self, queue: str) -> QueueStats:
        now = time.time()
        with self._changed:
            entries = self._queue(queue).entries
            in_flight = sum(1 for e in entries if e.visible_at > now and e.receive_count > 0)
            delayed = sum(1 for e in entries if e.visible_at > now and e.receive_count == 0)
            oldest = now - min(e.sent_at for e in entries) if entries else None
            return QueueStats(len(entries) - in_flight - delayed, in_flight, delayed, oldest)

    def close(self) -> None:
        """Nothing to release."""
