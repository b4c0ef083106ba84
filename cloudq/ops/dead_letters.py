"""Reading and replaying a queue's dead-letter queue, on any transport.

A queue cannot be read without receiving: listing receives messages with a short visibility
timeout and hands each back (visibility 0) when done, so nothing is consumed. Replay sends a
message back to its source queue, then deletes it from the dead-letter queue; a crash
between the two leaves it in both (at least once, like everything else), never in neither.

A replayed task starts a new life: its envelope (version 2) carries the attempts already
spent as a base, so it gets its whole retry budget again, and its final error joins the
history that its result record keeps. On a FIFO queue the replay has a deduplication id of
its own (the dead-letter copy's message id), so SQS does not drop it as a repeat of the
original send. A body that is not a cloudq message is sent back as it is.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cloudq.core.errors import DecodeError
from cloudq.runtime.replay import new_life
from cloudq.transports.base import (
    DeadLetterNote,
    OutgoingMessage,
    ReceivedMessage,
    dead_letter_queue_name,
    require_sent,
)

if TYPE_CHECKING:
    from cloudq.app.base import CloudQ
    from cloudq.transports.base import Transport

#: Seconds a listed message stays hidden while it is being read (then handed back).
READ_VISIBILITY_SECONDS = 30


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    task_id: str | None
    task: str | None
    reason: str
    source_queue: str
    body: str

    @classmethod
    def from_received(cls, message: ReceivedMessage, queue: str) -> DeadLetter:
        from cloudq.core.codec import Codec

        task_id, task = Codec.describe(message.body)
        note = DeadLetterNote.from_attributes(message.attributes)
        return cls(
            message_id=message.message_id,
            task_id=task_id,
            task=task,
            reason=note.reason if note else "(no reason: moved by the redrive policy)",
            source_queue=(note.source_queue if note else "") or queue,
            body=message.body,
        )


def _receive_all(transport: Transport, dlq: str, limit: int) -> Iterator[ReceivedMessage]:
    """Receive up to ``limit`` messages (each hidden while the caller handles it)."""
    seen = 0
    while seen < limit:
        batch = transport.receive(dlq, min(10, limit - seen), 0.0, READ_VISIBILITY_SECONDS)
        if not batch:
            return
        seen += len(batch)
        yield from batch


def list_dead_letters(app: CloudQ, queue: str, limit: int = 50) -> list[DeadLetter]:
    """Up to ``limit`` messages of ``queue``'s dead-letter queue, with their reasons."""
    transport = app.transport
    dlq = dead_letter_queue_name(queue)
    received = list(_receive_all(transport, dlq, limit))
    for message in received:
        transport.change_visibility(dlq, message.receipt_handle, 0)
    return [DeadLetter.from_received(message, queue) for message in received]


def replay_dead_letters(
    app: CloudQ, queue: str, ids: Collection[str] = (), limit: int = 10_000
) -> list[DeadLetter]:
    """Send dead letters back to their source queue: those whose message id or task id is in
    ``ids``, or all of them when ``ids`` is empty. Returns what was replayed."""
    transport = app.transport
    dlq = dead_letter_queue_name(queue)
    wanted = set(ids)
    replayed: list[DeadLetter] = []
    skipped: list[ReceivedMessage] = []
    for message in _receive_all(transport, dlq, limit):
        letter = DeadLetter.from_received(message, queue)
        if wanted and not ({letter.message_id, letter.task_id} & wanted):
            skipped.append(message)
            continue
        body = _replay_body(app, letter)
        # Its own deduplication id, where the broker deduplicates (not dropped as a repeat).
        dedup = f"replay-{message.message_id}" if transport.deduplication else None
        again = OutgoingMessage(body, group_id=message.group_id, deduplication_id=dedup)
        require_sent(letter.source_queue, transport.send(letter.source_queue, [again]))
        transport.ack(dlq, [message.receipt_handle])
        replayed.append(letter)
    for message in skipped:
        transport.change_visibility(dlq, message.receipt_handle, 0)
    return replayed


def _replay_body(app: CloudQ, letter: DeadLetter) -> str:
    """The body a dead letter is replayed with: a new life for a cloudq message (a payload
    pointer kept as it is), the body unchanged for anything else."""
    try:
        message = app.codec.parse(letter.body, letter.message_id, letter.source_queue)
    except DecodeError:
        return letter.body
    return app.encode(new_life(app, message, letter.reason), letter.source_queue)
