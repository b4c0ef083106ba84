"""The receiving side of ``AMQPTransport``: a delivery, a held one, and one consumer per queue
(dramatiq's ``_RabbitmqConsumer``), whose state is that queue's alone. A consumer consumes its
queue, books what the broker delivers, and hands it out in order; the transport owns the
connection and the books of every queue (``unacked``, by receipt handle), and passes them in."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from typing import Any

from cloudq.transports import kombu_forms
from cloudq.transports.amqp_headers import (
    GROUP_HEADER,
    RECEIVES_HEADER,
    SENT_HEADER,
    header_text,
    own_attributes,
)
from cloudq.transports.base import ReceivedMessage, is_fifo

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
    #: A Celery queue's deliveries are handed out as kombu's message JSON (``kombu_forms``).
    celery: bool = False
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

    def holding(self, unacked: Mapping[str, Delivery]) -> int:
        """Deliveries of this queue handed out and not settled yet."""
        buffered = {id(item.delivery) for item in self.buffer}
        return sum(1 for d in unacked.values() if d.queue == self.queue and id(d) not in buffered)

    def consume(
        self,
        channel: Any,
        physical: str,
        limit: int,
        unacked: Mapping[str, Delivery],
        on_delivery: Callable[[Any], None],
    ) -> None:
        """Consume with a prefetch of the messages the caller holds (handed out, not settled)
        plus ``limit``, plus one batch ahead while acks keep coming (amqp.py's docstring): the
        broker pushes no more than the caller asked for beyond what it has (the worker asks for
        its free threads and look-ahead, and acks each message as its task ends). The broker
        consumer is made again when that prefetch is too small, or far too big (a burst is
        over); the deliveries already here stay."""
        ahead = BATCH_SIZE if self.acks_flowing() else 0
        wanted = self.holding(unacked) + limit + ahead
        if self.keeps_prefetch(wanted):
            return
        if self.tag is not None:
            channel.basic_cancel(self.tag)
        channel.basic_qos(0, wanted, False)  # per consumer: quorum queues have no global qos
        self.tag = channel.basic_consume(
            physical,
            callback=on_delivery,
            on_cancel=lambda tag: self.cancelled(),
        )
        self.prefetch = wanted

    def on_delivery(self, raw: Any, generation: int, unacked: MutableMapping[str, Delivery]) -> None:
        """Book a broker delivery: in ``unacked`` under a handle of connection ``generation``,
        and at the end of the buffer."""
        properties = dict(raw.properties)
        headers = dict(properties.get("application_headers") or {})
        handle = f"{generation}.{raw.delivery_tag}"
        if self.celery:
            body = kombu_forms.from_amqp(raw.body, properties)
        else:
            body = raw.body.decode() if isinstance(raw.body, bytes) else raw.body
        received = ReceivedMessage(
            queue=self.queue,
            message_id=str(properties.get("message_id") or handle),
            receipt_handle=handle,
            body=body,
            receive_count=int(headers.get(RECEIVES_HEADER, 0)) + int(headers.get("x-delivery-count", 0)) + 1,
            sent_timestamp_ms=int(headers.get(SENT_HEADER) or properties.get("timestamp", 0) * 1000),
            attributes=own_attributes(headers),
            group_id=header_text(headers[GROUP_HEADER]) if GROUP_HEADER in headers else None,
        )
        delivery = Delivery(self.queue, raw.delivery_tag, body, properties, received)
        unacked[handle] = delivery
        self.buffer.append(Held(delivery))

    def drain(self, connection: Any, limit: int, seconds: float, send_acks: Callable[[], None]) -> None:
        """Wait up to ``seconds`` for a delivery, then take what else has arrived (until
        ``limit`` are buffered here)."""
        while len(self.buffer) < limit:
            send_acks()
            try:
                connection.drain_events(timeout=seconds)
            except TimeoutError:  # nothing (more) arrived
                return
            seconds = 0.0001

    def take(self, limit: int, unacked: Mapping[str, Delivery]) -> list[ReceivedMessage]:
        """Hand out buffered deliveries in order; on a FIFO queue never two of one group at
        once (the others stay buffered, in order, until the group is free)."""
        now = time.time()
        queue = self.queue
        buffered = self.buffer
        busy: set[str | None] = set()
        if is_fifo(queue):
            inside = {id(item.delivery) for item in buffered}
            handed_out = [d for d in unacked.values() if d.queue == queue and id(d) not in inside]
            busy = {delivery.received.group_id for delivery in handed_out}
        got: list[ReceivedMessage] = []
        keep: list[Held] = []
        for item in buffered:
            group = item.delivery.received.group_id
            if len(got) >= limit or item.visible_at > now or group in busy:
                keep.append(item)
                if is_fifo(queue):
                    busy.add(group)
                continue
            if is_fifo(queue):
                busy.add(group)
            got.append(item.delivery.received)
        self.buffer = keep
        return got

    def discard(self, delivery: Delivery) -> None:
        """Drop a settled delivery from the buffer (if it was still there)."""
        self.buffer = [item for item in self.buffer if item.delivery is not delivery]

    def hold_in_place(self, delivery: Delivery, seconds: int, unacked: MutableMapping[str, Delivery]) -> None:
        """Keep a FIFO message first in the buffer, unacked, for ``seconds`` (a hand-back)."""
        received = delivery.received
        # A new handle: the old one is stale, as on SQS; the next receive counts one more.
        handle = f"{received.receipt_handle}+"
        again = replace(received, receipt_handle=handle, receive_count=received.receive_count + 1)
        unacked.pop(received.receipt_handle, None)
        self.discard(delivery)
        moved = Delivery(delivery.queue, delivery.delivery_tag, delivery.body, delivery.properties, again)
        unacked[handle] = moved
        self.buffer.insert(0, Held(moved, time.time() + seconds))

    def cancelled(self) -> None:
        self.tag, self.prefetch = None, 0

    def forget(self) -> None:
        """The connection is gone, and with it the consumer and what it delivered."""
        self.cancelled()
        self.buffer, self.oversized_since = [], None
