"""The receiving side's books of ``AMQPTransport``: a delivery, a held one, and one consumer
per queue (dramatiq's ``_RabbitmqConsumer``), whose state is that queue's alone."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from cloudq.transports.base import ReceivedMessage

#: Messages per ``receive`` and per ``ack`` call, as the worker batches them.
BATCH_SIZE = 10
#: Acks are "flowing" when the last came within this long (short tasks finishing): receive
#: slices stay at amqp.FIRST_SLICE_SECONDS (each ack lets the broker push the next message) and the
#: prefetch runs one batch ahead.
ACKS_FLOWING_SECONDS = 0.05
#: A consumer's prefetch far above what its caller holds and asks for is made smaller once it
#: has been so for this long (a burst is over).
PREFETCH_SHRINK_SECONDS = 2.0


@dataclass
class Delivery:
    """A message this transport received and has not settled."""

    queue: str
    delivery_tag: int
    body: str
    properties: dict[str, Any]
    received: ReceivedMessage


@dataclass
class Held:
    """A FIFO message held back (unacked) while its group has one in flight."""

    delivery: Delivery
    visible_at: float = 0.0


@dataclass
class Consumer:
    """One queue's consuming state (dramatiq's ``_RabbitmqConsumer``): the broker consumer and
    its prefetch, the deliveries buffered and not handed out (in order), since when that
    prefetch has been far too big, and when the caller last acked one of its messages."""

    queue: str
    #: The broker's consumer tag; ``None``: not consuming (never, cancelled, or connection lost).
    tag: str | None = None
    prefetch: int = 0
    buffer: list[Held] = field(default_factory=list)
    oversized_since: float | None = None
    #: When ``ack`` was last called for this queue (monotonic): see ``acks_flowing``.
    acked_at: float | None = None

    def acks_flowing(self) -> bool:
        """Whether the caller acked a message of this queue within ``ACKS_FLOWING_SECONDS``."""
        return self.acked_at is not None and time.monotonic() - self.acked_at < ACKS_FLOWING_SECONDS

    def keeps_prefetch(self, wanted: int) -> bool:
        """Whether the consumer can stay as it is for a prefetch of ``wanted``: it consumes,
        with at least that, and not far more for longer than ``PREFETCH_SHRINK_SECONDS``
        (what the caller holds swings from one call to the next)."""
        if self.tag is not None and wanted <= self.prefetch:
            if self.prefetch <= 2 * wanted + BATCH_SIZE:
                self.oversized_since = None
                return True
            if self.oversized_since is None:
                self.oversized_since = time.monotonic()
            if time.monotonic() - self.oversized_since < PREFETCH_SHRINK_SECONDS:
                return True
        self.oversized_since = None
        return False

    def cancelled(self) -> None:
        self.tag, self.prefetch = None, 0

    def forget(self) -> None:
        """The connection is gone, and with it the consumer and what it delivered."""
        self.cancelled()
        self.buffer, self.oversized_since = [], None
