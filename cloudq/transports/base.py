"""The ``Transport`` protocol: what a broker engine must do, on primitives only.

A transport moves JSON strings between named queues. It knows nothing of tasks or results.
Queue names given to a transport are *logical* names (``emails``); the engine maps them to
physical ones (``shop-emails`` on SQS) and to their dead-letter queues (``shop-emails-dlq``).

Semantics every engine keeps (the conformance suite checks them):

- ``receive`` hides each returned message for the visibility timeout; a message that is not
  acknowledged in time becomes visible again with its ``receive_count`` increased by one.
- ``send`` with ``delay_seconds`` keeps the message invisible for that long (at most
  ``max_delay_seconds``; SQS allows 900).
- ``change_visibility(…, 0)`` makes a received message visible again at once.
- a message handle that is no longer valid (acknowledged, or received again since) is
  ignored by ``ack`` and ``change_visibility``.
- ``send`` answers for every message: one ``SendResult`` per message, in order, holding its
  message id or why the broker refused it. A refusal of one message never stops the others,
  and a message is never dropped without a refused result: if nothing could be sent (the
  broker unreachable), ``TransportError`` is raised; once some messages are sent, a request
  that fails makes its messages, and those not sent yet, refused results with the reason.
  Batches to a standard queue may go out in parallel (SQS: 4 threads); a FIFO queue's go one
  after another, in order.
  A body with a character SQS refuses (``refused_body``) is refused alone, on every engine.
- ``visibility_timeouts`` (a capability): ``True`` when the engine keeps a per-message
  visibility timeout (SQS, Redis, memory). ``False`` when a received message is instead held
  by its receiver's connection until it is settled (RabbitMQ: unacked until acked): then
  ``receive``'s ``visibility_timeout`` and ``extend_visibility`` have no effect, in-flight
  counts are only this client's, and ``change_visibility(handle, N)`` still delivers the
  message again after N seconds (re-sent with a delay), which is all the executor asks of it
  (retry later, hand back). The worker then runs no heartbeat, and warns at start about tasks
  whose timeout passes ``max_visibility_seconds`` (the broker's own limit on holding one).
  A message of a dead receiver comes back when the broker sees its connection close.
- ``immediate_acks`` (a capability): ``True`` when the worker should ``ack`` each message as
  soon as its task is done rather than batch the acks (RabbitMQ: an ack is one frame with no
  answer to wait for, and a finished but unacked message still fills the prefetch window, so
  batching only makes the broker stop pushing); ``False`` when an ack is a request worth
  batching (SQS: one ``DeleteMessageBatch`` per 10; Redis; memory).
- ``deduplication`` (a capability): ``True`` when a FIFO queue keeps SQS's deduplication: a
  message whose deduplication id (``fifo_deduplication_id``: its ``deduplication_id``, else the
  SHA-256 of its body) was sent to the queue in the last ``SQS_LIMITS.deduplication_seconds`` (5 min)
  is answered as sent but not enqueued again (SQS, Redis, memory; Redis and memory answer
  with the first message's id). ``False`` when the broker has none (RabbitMQ): a repeated
  body is a second message, and a send with a ``deduplication_id`` to a FIFO queue raises
  ``ConfigurationError`` before anything is sent (it would be silently ignored otherwise).
  Standard queues ignore it on every engine, as SQS does.
- ``dead_letter`` puts the body on the queue's dead-letter queue with the reason as an
  attribute (``dead_letter_attributes``), then deletes the original: the message is never in
  neither queue.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from cloudq.core.errors import MessageTooLargeError, TransportError

# Names are owned by cloudq.core.naming; engines import them from here as before.
from cloudq.core.naming import dead_letter_queue_name, is_fifo

__all__ = [
    "DEAD_LETTER_ATTRIBUTE",
    "SQS_LIMITS",
    "DeadLetterNote",
    "EngineLimits",
    "OutgoingMessage",
    "QueueStats",
    "ReceivedMessage",
    "Transport",
    "check_size",
    "dead_letter_attributes",
    "dead_letter_queue_name",
    "fifo_deduplication_id",
    "is_fifo",
]


@dataclass(frozen=True)
class EngineLimits:
    """A broker's limits as one value. An engine exposes them as the ``Transport`` attributes
    of the same names (``max_message_bytes`` may be set lower per instance)."""

    #: The longest delay of one send, in seconds.
    max_delay_seconds: int
    #: The largest body, in bytes (UTF-8).
    max_message_bytes: int
    #: The longest a received message may stay hidden, in all, in seconds.
    max_visibility_seconds: int
    #: Messages per send or receive request.
    batch_size: int
    #: How long a FIFO queue remembers a deduplication id, in seconds (0: no deduplication).
    deduplication_seconds: int = 0


#: SQS's limits (a delay of 15 minutes, 1 MiB bodies, 12 hours of ChangeMessageVisibility,
#: 10 messages per batch, a FIFO deduplication window of 5 minutes). The memory and Redis
#: engines keep them too, so that what works on them works on SQS; they live here so that
#: those engines need not import the SQS engine (and botocore).
SQS_LIMITS = EngineLimits(
    max_delay_seconds=900,
    max_message_bytes=1024 * 1024,
    max_visibility_seconds=43_200,
    batch_size=10,
    deduplication_seconds=300,
)

#: The message attribute of a dead-letter copy saying why, and from where, it was moved: JSON
#: ``{"reason": ..., "source_queue": ..., "dropped_attributes": [...]}``. One attribute, so a
#: message keeps as many of its own as the broker allows (SQS: 10 in all).
DEAD_LETTER_ATTRIBUTE = "cloudq-dead-letter"
#: The two attributes cloudq wrote before ``DEAD_LETTER_ATTRIBUTE``: still read, never written.
REASON_ATTRIBUTE = "cloudq-dead-letter-reason"
SOURCE_QUEUE_ATTRIBUTE = "cloudq-source-queue"
CLOUDQ_ATTRIBUTES = frozenset({DEAD_LETTER_ATTRIBUTE, REASON_ATTRIBUTE, SOURCE_QUEUE_ATTRIBUTE})
#: A reason is a line for a person (the executor clips longer ones): SQS message attributes
#: count against the message's size, and logs stay readable.
MAX_REASON_CHARS = 1000


@dataclass(frozen=True)
class OutgoingMessage:
    """One message to send."""

    body: str
    delay_seconds: int = 0
    attributes: Mapping[str, str] = field(default_factory=dict)
    #: FIFO queues only: the message group (ordering unit) and deduplication id.
    group_id: str | None = None
    deduplication_id: str | None = None


def fifo_deduplication_id(message: OutgoingMessage) -> str:
    """The id a FIFO queue deduplicates ``message`` by: its ``deduplication_id``, else the
    SHA-256 of its body. cloudq's FIFO queues are created without SQS's
    ContentBasedDeduplication; the SQS engine sends this hash instead, so every engine with the
    ``deduplication`` capability deduplicates a repeated body the same way."""
    return message.deduplication_id or hashlib.sha256(message.body.encode()).hexdigest()


@dataclass(frozen=True)
class SendResult:
    """What became of one message of a ``send``: its message id, or why it was not sent."""

    message_id: str | None = None
    error: str | None = None

    @property
    def sent(self) -> bool:
        return self.message_id is not None


def require_sent(queue: str, results: Sequence[SendResult]) -> list[str]:
    """The message ids of ``results``; ``TransportError`` naming the first refusal when any
    message was not sent (for callers that need every message sent, or none)."""
    refused = [result for result in results if not result.sent]
    if refused:
        raise TransportError(
            f"{len(refused)} of {len(results)} message(s) not sent to {queue!r}: {refused[0].error}"
        )
    return [result.message_id for result in results if result.message_id is not None]


def not_sent(reason: str) -> SendResult:
    """The result of a message never sent because a request failed (``reason``)."""
    return SendResult(error=f"not sent: {reason}")


#: Characters SQS accepts in a body (#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD |
#: #x10000-#x10FFFF); emulators accept any, so every engine refuses the rest itself.
_REFUSED_CHARACTERS = "[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"


@functools.cache
def _refused_characters() -> re.Pattern[str]:
    """Compiled on the first send, not at import: the character ranges take ~3 ms (issue 14)."""
    return re.compile(_REFUSED_CHARACTERS)


def refused_body(body: str) -> str | None:
    """Why SQS would refuse ``body`` as one entry of a batch, or ``None`` when it would not."""
    found = _refused_characters().search(body)
    if found is None:
        return None
    return f"InvalidMessageContents: character U+{ord(found.group()):04X} at {found.start()} is not allowed"


@dataclass(frozen=True)
class ReceivedMessage:
    """One received message, with what is needed to acknowledge or hand it back."""

    queue: str
    message_id: str
    receipt_handle: str
    body: str
    #: How many times this message has been received, this time included (SQS
    #: ApproximateReceiveCount).
    receive_count: int = 1
    sent_timestamp_ms: int = 0
    attributes: Mapping[str, str] = field(default_factory=dict)
    group_id: str | None = None


@dataclass(frozen=True)
class QueueStats:
    """Approximate counts, as SQS reports them."""

    visible: int
    in_flight: int
    delayed: int
    #: Seconds since the oldest message was sent, when the engine can tell without receiving
    #: (Redis, memory); ``None`` otherwise (SQS publishes it to CloudWatch only).
    oldest_age_seconds: float | None = None


@runtime_checkable
class Transport(Protocol):
    """A broker engine. Every method is safe to call from several threads at once."""

    #: The longest ``delay_seconds`` the engine accepts (SQS: 900).
    max_delay_seconds: int
    #: The largest body, in bytes, the engine accepts (SQS: 1 MiB).
    max_message_bytes: int
    #: The longest a received message can stay hidden in all (SQS: 12 hours).
    max_visibility_seconds: int
    #: The most messages of one ``receive`` or one batched call (SQS: 10).
    batch_size: int
    #: Whether each received message has its own visibility timeout (module docstring).
    visibility_timeouts: bool
    #: Whether the worker acks each message at once instead of in batches (module docstring).
    immediate_acks: bool
    #: Whether FIFO queues drop a repeated deduplication id for 5 minutes (module docstring).
    deduplication: bool

    def describe(self) -> str:
        """Where the broker is, for people: banners and error messages."""
        ...

    def check_queues(self, queues: Sequence[str]) -> None:
        """Raise ``QueueNotFoundError`` naming the first queue (or its DLQ) that does not exist."""
        ...

    def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        """Send messages (batched by the engine); return one ``SendResult`` per message, in
        order: its message id, or why it was not sent (see the module's contract). A body over
        ``max_message_bytes`` raises ``MessageTooLargeError`` before anything is sent; so does
        a ``deduplication_id`` on a FIFO queue of an engine without ``deduplication``
        (``ConfigurationError``)."""
        ...

    def receive(
        self,
        queue: str,
        max_messages: int = 10,
        wait_seconds: float = 20.0,
        visibility_timeout: int | None = None,
    ) -> list[ReceivedMessage]:
        """Long-poll for up to ``max_messages`` (at most 10).

        Returns as soon as at least one message is available, or an empty list after
        ``wait_seconds``. Returned messages are invisible for ``visibility_timeout`` seconds
        (the queue's default when ``None``).
        """
        ...

    def ack(self, queue: str, receipt_handles: Sequence[str]) -> None:
        """Delete received messages (batched). Deleting an already-deleted message is not an error."""
        ...

    def change_visibility(self, queue: str, receipt_handle: str, visibility_timeout: int) -> None:
        """Make a received message visible again after ``visibility_timeout`` seconds from now.

        Used to retry later, to extend a running task's lease, and (with 0) to hand back.
        """
        ...

    def extend_visibility(self, queue: str, receipt_handles: Sequence[str], visibility_timeout: int) -> None:
        """``change_visibility`` for many messages of one queue at once (batched by the engine):
        the worker's heartbeat. Invalid handles are ignored.

        One failure does not stop the rest: every batch is sent, then ``TransportError`` is
        raised if any message could not be extended, saying how many of how many and why.
        """
        ...

    def dead_letter(self, message: ReceivedMessage, reason: str) -> str:
        """Move ``message`` to its queue's dead-letter queue with ``reason``, then delete it.
        Returns the dead-letter copy's message id (the one ``cloudq dlq list`` shows)."""
        ...

    def stats(self, queue: str) -> QueueStats:
        """Approximate visible / in-flight / delayed counts of a queue, and the age of its
        oldest message where the engine knows it. Never receives (a peek would count as one)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@dataclass(frozen=True)
class DeadLetterNote:
    """What cloudq records on a dead-letter copy."""

    reason: str
    #: Empty when not recorded (the old two-attribute form without its second attribute).
    source_queue: str = ""
    #: The message's own attributes left out to keep within the broker's limit.
    dropped_attributes: tuple[str, ...] = ()

    @classmethod
    def from_attributes(cls, attributes: Mapping[str, str]) -> DeadLetterNote | None:
        """The note of a dead-letter copy, in either form cloudq wrote; ``None`` when there is
        none (the broker's redrive policy moved the message)."""
        raw = attributes.get(DEAD_LETTER_ATTRIBUTE)
        if raw is None:
            reason = attributes.get(REASON_ATTRIBUTE)
            source = attributes.get(SOURCE_QUEUE_ATTRIBUTE, "")
            return None if reason is None else cls(reason, source)
        try:
            note = json.loads(raw)
        except (ValueError, RecursionError):
            note = None
        if not isinstance(note, dict):
            return cls(raw)  # not cloudq's JSON: the text is all there is
        dropped = note.get("dropped_attributes")
        return cls(
            str(note.get("reason", "")),
            str(note.get("source_queue", "")),
            tuple(str(name) for name in dropped) if isinstance(dropped, list) else (),
        )


def dead_letter_attributes(
    message: ReceivedMessage, reason: str, max_attributes: int | None = None
) -> dict[str, str]:
    """The attributes of ``message``'s dead-letter copy: its own, and cloudq's note (reason,
    source queue) as one more.

    An engine with a limit on attributes per message passes it as ``max_attributes``; when the
    message's own would pass it, the least useful are dropped and named in the note: empty
    ones first (a binary attribute arrives empty), then the last in name order.
    """
    own = {name: value for name, value in message.attributes.items() if name not in CLOUDQ_ATTRIBUTES}
    kept, dropped = dict(own), []
    if max_attributes is not None and len(own) >= max_attributes:
        most_useful_first = sorted(own, key=lambda name: (own[name] == "", name))
        dropped = sorted(most_useful_first[max_attributes - 1 :])
        kept = {name: own[name] for name in most_useful_first[: max_attributes - 1]}
    note: dict[str, object] = {"reason": reason[:MAX_REASON_CHARS], "source_queue": message.queue}
    if dropped:
        note["dropped_attributes"] = dropped
    return {**kept, DEAD_LETTER_ATTRIBUTE: json.dumps(note, ensure_ascii=False)}


def check_size(body: str, max_bytes: int) -> None:
    """Raise ``MessageTooLargeError`` when ``body`` is over ``max_bytes`` (UTF-8)."""
    size = len(body.encode())
    if size > max_bytes:
        raise MessageTooLargeError(f"message is {size} bytes, over the broker limit of {max_bytes}")
