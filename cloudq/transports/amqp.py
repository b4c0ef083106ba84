"""``amqp://`` / ``amqps://``: RabbitMQ 3.10+ (Amazon MQ for RabbitMQ on AWS) through ``amqp``.

The client is ``amqp`` (py-amqp), the one Celery and kombu use: maintained with them, pure
Python, synchronous (no I/O loop thread to own), with publisher confirms.

The queues of a logical queue (quorum, with a dead-letter queue and delay queues) are drawn
in amqp_topology.py.

RabbitMQ clients declare their queues: ``check_queues`` and the first send or receive of a
queue declare it when missing (a queue that exists with other arguments is used as it is).

Semantics (``Transport`` in base.py; this engine declares ``visibility_timeouts = False``):

- Visibility is "unacked until acked": a received message stays with this connection until
  ``ack``, ``change_visibility`` or ``dead_letter``, or until the connection closes (the
  process died): then the broker delivers it again with its delivery count raised. There is
  no timeout in between, so ``receive``'s ``visibility_timeout`` and ``extend_visibility``
  change nothing, except RabbitMQ's broker-wide ``consumer_timeout`` (30 min by default; 3.10
  has no per-queue one): a message unacked for longer closes the channel, and the broker
  delivers it (and every other message of the channel) again.
- ``change_visibility(handle, N)`` (a retry, a hand-back) re-publishes the message with a delay
  of N seconds and acks the original, so it does not spend the queue's delivery limit; the
  copy keeps its message id and carries the receives so far (``cloudq-receives``), so
  ``receive_count`` still counts every receive, as SQS's ApproximateReceiveCount does.
- ``receive`` consumes (``basic_consume``; ``basic_get`` is a slow path on quorum queues) with
  a prefetch of the messages the caller already holds plus the ``max_messages`` it asks for,
  so the broker pushes no more than the caller can start (the worker asks for its free
  threads), plus one batch (``BATCH_SIZE``) ahead while the caller is acking (an ack within
  ``ACKS_FLOWING_SECONDS``): short tasks then find their next message here instead of waiting
  a broker round trip per message; deliveries wait in order in this transport until handed
  out. Acks are wanted at once (``immediate_acks``): a finished message left unacked would
  hold a place of that window.
- FIFO (``*.fifo``): a quorum queue keeps send order, and is declared with
  ``x-single-active-consumer`` (one consumer at a time gets its messages, the others stand
  by); within that consumer, a message of a group that has one in flight stays buffered
  (unacked, in order) until the group is free, and a FIFO hand-back stays in place.
- No deduplication (``deduplication = False``): RabbitMQ keeps no window of ids, so a repeated
  body is a second message, and a ``deduplication_id`` on a FIFO queue is refused
  (``ConfigurationError``) rather than silently not kept.
- ``stats``: ``visible`` is the broker's ready count; ``in_flight`` and ``delayed`` are what
  this transport holds or has delayed (AMQP reports no unacked or per-delay counts).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Sequence
from typing import Any

from cloudq.core.errors import ConfigurationError, TransportError
from cloudq.core.ids import random_uuid
from cloudq.core.naming import is_celery_queue
from cloudq.transports import kombu_forms
from cloudq.transports.amqp_consumer import BATCH_SIZE, Consumer, Delivery
from cloudq.transports.amqp_errors import CONNECTION_ERRORS, Mapped
from cloudq.transports.amqp_headers import GROUP_HEADER, RECEIVES_HEADER, SENT_HEADER, own_headers
from cloudq.transports.amqp_topology import DELIVERY_LIMIT, Topology, amqp
from cloudq.transports.amqp_url import parse_amqp_url
from cloudq.transports.base import (
    OutgoingMessage,
    QueueStats,
    ReceivedMessage,
    SendResult,
    check_size,
    dead_letter_attributes,
    dead_letter_queue_name,
    is_fifo,
    not_sent,
    refused_body,
)

#: Longest delay of one send: each distinct delay is a queue, so longer waits hop (executor).
MAX_DELAY_SECONDS = 900
#: cloudq's default body limit on RabbitMQ (the broker allows 128 MiB, but every byte of a
#: quorum queue goes through its Raft log); larger payloads use the claim check.
MAX_MESSAGE_BYTES = 1024 * 1024
#: RabbitMQ's broker-wide ``consumer_timeout`` default (30 min): the longest a message can stay
#: unacked. A client cannot change it (rabbitmq.conf, or the Amazon MQ configuration).
CONSUMER_TIMEOUT_SECONDS = 1800
#: A long poll waits for deliveries in slices this long, letting other threads in between.
DRAIN_SLICE_SECONDS = 0.02
FIRST_SLICE_SECONDS = 0.001
#: How long a receive without waiting lets the broker push (a consumer's first deliveries).
SHORT_POLL_SECONDS = 0.02


class AMQPTransport:
    """Queues on one RabbitMQ virtual host, named ``<prefix><logical name>``."""

    max_delay_seconds = MAX_DELAY_SECONDS
    max_visibility_seconds = CONSUMER_TIMEOUT_SECONDS
    batch_size = BATCH_SIZE
    #: No per-message visibility timeout: see the module docstring.
    visibility_timeouts = False
    #: An ack is one frame with no answer, and a finished message left unacked would hold a
    #: place of the prefetch window: the worker acks each at once (``Transport.immediate_acks``).
    immediate_acks = True
    #: RabbitMQ has no deduplication window (module docstring).
    deduplication = False

    def __init__(
        self,
        host: str = "127.0.0.1:5672",
        prefix: str = "",
        *,
        userid: str = "guest",
        password: str = "guest",
        virtual_host: str = "/",
        ssl: bool = False,
        delivery_limit: int = DELIVERY_LIMIT,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        connect_timeout: float = 5.0,
        celery_queues: Collection[str] = (),
    ) -> None:
        self.host, self.prefix, self.virtual_host = host, prefix, virtual_host
        #: Queues Celery also uses (``celery_queues``): their messages are Celery's AMQP form.
        self.celery_queues = frozenset(celery_queues)
        self.delivery_limit = delivery_limit
        self.max_message_bytes = max_message_bytes
        self._options = {
            "host": host,
            "userid": userid,
            "password": password,
            "virtual_host": virtual_host,
            "ssl": ssl,
            "connect_timeout": connect_timeout,
            "confirm_publish": True,  # a send returns once the broker has the message
            "heartbeat": 0,  # a running task never services heartbeats; a dead peer closes TCP
        }
        self._lock = threading.RLock()
        self._connection: Any = None
        self._channel: Any = None
        self._admin: Any = None
        #: Bumped on every new connection: handles of an older one are stale.
        self._generation = 0
        self._unacked: dict[str, Delivery] = {}
        #: Queue → its consumer (made on first use, kept across connections).
        self._consumers: dict[str, Consumer] = {}
        #: Receipt handles acked while another thread had the connection (see ``ack``).
        self._pending_acks: list[str] = []
        self._pending_lock = threading.Lock()
        self._topology = Topology(prefix, delivery_limit, self._admin_channel, self.celery_queues)

    @classmethod
    def from_url(cls, url: str, prefix: str = "", **options: Any) -> AMQPTransport:
        """From a broker URL (``parse_amqp_url``): ``amqp://user:password@host:5672/vhost``."""
        host, keywords = parse_amqp_url(url)
        if "delivery_limit" in keywords:  # an explicit option wins over the URL's
            options.setdefault("delivery_limit", keywords.pop("delivery_limit"))
        return cls(host, prefix, **keywords, **options)

    def describe(self) -> str:
        return f"RabbitMQ at {self.host} vhost {self.virtual_host}"

    # -- connection ----------------------------------------------------------------------

    def _mapped(self, what: str) -> Mapped:
        """The one boundary where amqp and socket errors become ``TransportError``: holds the
        connection's lock, and sends the acks queued while another thread had it."""
        return Mapped(self, what)

    def _main(self) -> Any:
        if self._channel is None:
            connection = amqp.Connection(**self._options)
            connection.connect()
            self._connection, self._generation = connection, self._generation + 1
            self._channel, self._admin = connection.channel(), connection.channel()
        return self._channel

    def _admin_channel(self) -> Any:
        self._main()
        if not self._admin.is_open:  # closed by a 404 of a passive declare
            self._admin = self._connection.channel()
        return self._admin

    def _consumer(self, queue: str) -> Consumer:
        consumer = self._consumers.get(queue)
        if consumer is None:  # setdefault: an ack may make it from another thread
            celery = is_celery_queue(queue, self.celery_queues)
            consumer = self._consumers.setdefault(queue, Consumer(queue, celery))
        return consumer

    def _forget(self) -> None:
        self._unacked.clear()
        for consumer in list(self._consumers.values()):
            consumer.forget()
        self._topology.forget()

    def _drop(self) -> None:
        """Forget the connection; the broker re-delivers what it held unacked."""
        connection, self._connection, self._channel, self._admin = self._connection, None, None, None
        self._forget()
        if connection is not None:
            try:
                connection.collect()
            except Exception:  # noqa: BLE001 - already broken; nothing to release cleanly
                pass

    # -- queues --------------------------------------------------------------------------

    def _ensure(self, queue: str) -> str:
        self._main()
        return self._topology.ensure(queue)

    def check_queues(self, queues: Sequence[str]) -> None:
        """Declare each queue, its dead-letter queue, when missing; fail if the broker is
        unreachable or refuses."""
        with self._mapped("declare queues"):
            for queue in queues:
                self._ensure(queue)

    # -- sending -------------------------------------------------------------------------

    def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        """One result per message (the protocol's contract): a body SQS would refuse is
        refused alone; if a publish fails, that message and the rest are not sent, and when
        nothing was sent at all ``TransportError`` is raised."""
        for message in messages:
            check_size(message.body, self.max_message_bytes)
        if is_fifo(queue) and any(message.deduplication_id is not None for message in messages):
            raise ConfigurationError(
                f"deduplication_id= on {queue!r}: RabbitMQ has no deduplication (a repeat would "
                "be delivered again); send without it, or use SQS or Redis for FIFO deduplication"
            )
        results: list[SendResult] = []
        for position, message in enumerate(messages):
            refused = refused_body(message.body)
            if refused is not None:
                results.append(SendResult(error=refused))
                continue
            headers = dict(message.attributes)
            if message.group_id is not None:
                headers[GROUP_HEADER] = message.group_id
            message_id = random_uuid()
            try:
                with self._mapped(f"send to {queue}"):
                    self._publish(queue, message.body, message_id, headers, message.delay_seconds)
            except TransportError as exc:
                if not any(result.sent for result in results):
                    raise
                results.extend(not_sent(str(exc)) for _ in messages[position:])
                return results
            results.append(SendResult(message_id))
        return results

    def _publish(self, queue: str, body: str, message_id: str, headers: dict[str, Any], delay: int) -> None:
        delay = min(max(int(delay), 0), MAX_DELAY_SECONDS)
        channel = self._main()
        routing_key = self._topology.ensure_delay(queue, delay) if delay else self._topology.ensure(queue)
        # The send time is the SENT_HEADER alone (AMQP's ``timestamp`` property, whole seconds,
        # is not set: ``Consumer.on_delivery`` still reads it from messages of older senders).
        celery = kombu_forms.to_amqp(body) if is_celery_queue(queue, self.celery_queues) else None
        raw, properties = (body, {}) if celery is None else celery  # Celery's own AMQP form
        headers = {
            **properties.pop("application_headers", {}),
            **headers,
            SENT_HEADER: int(time.time() * 1000),
        }
        properties.setdefault("delivery_mode", 2)  # persistent
        payload = amqp.Message(raw, message_id=message_id, application_headers=headers, **properties)
        channel.basic_publish(payload, exchange="", routing_key=routing_key)

    # -- receiving -----------------------------------------------------------------------

    def receive(
        self,
        queue: str,
        max_messages: int = BATCH_SIZE,
        wait_seconds: float = 20.0,
        visibility_timeout: int | None = None,
    ) -> list[ReceivedMessage]:
        """Wait for deliveries until one can be handed out or ``wait_seconds`` pass;
        ``visibility_timeout`` has no effect (unacked until acked)."""
        limit = max(1, min(max_messages, BATCH_SIZE))
        deadline = time.monotonic() + wait_seconds
        # The connection is waited on in slices, so that other threads' acks and sends get
        # it in between: short at first, and for as long as acks of messages handed out keep
        # coming (an ack queued during a slice waits for its end, and the broker's next
        # delivery for that ack), up to DRAIN_SLICE_SECONDS otherwise (an idle queue, long
        # tasks: few wake-ups). A short poll (no wait) still gives the broker a moment to push.
        slice_seconds = FIRST_SLICE_SECONDS
        consumer = self._consumer(queue)
        while True:
            with self._mapped(f"receive from {queue}"):
                self._consume(queue, limit)
                got = consumer.take(limit, self._unacked)
                remaining = deadline - time.monotonic()
                if not got:
                    wait = min(slice_seconds, remaining) if remaining > 0 else SHORT_POLL_SECONDS
                    consumer.drain(self._connection, limit, wait, self._send_acks)
                    got = consumer.take(limit, self._unacked)
                acks_flowing = consumer.holding(self._unacked) > 0 and consumer.acks_flowing()
            if got or remaining <= 0:
                return got
            if not acks_flowing:
                slice_seconds = min(2 * slice_seconds, DRAIN_SLICE_SECONDS)

    def _consume(self, queue: str, limit: int) -> None:
        """Make sure ``queue`` is declared and consumed (``Consumer.consume``): its deliveries
        are booked under this connection's handles as they arrive."""
        physical = self._ensure(queue)
        consumer = self._consumer(queue)
        consumer.consume(
            self._channel,
            physical,
            limit,
            self._unacked,
            lambda raw: consumer.on_delivery(raw, self._generation, self._unacked),
        )

    # -- settling ------------------------------------------------------------------------

    def _settle(self, handle: str) -> Delivery | None:
        """Take a delivery out of this transport's books; ``None`` when the handle is stale."""
        delivery = self._unacked.pop(handle, None)
        if delivery is not None:
            self._consumer(delivery.queue).discard(delivery)
        return delivery

    def ack(self, queue: str, receipt_handles: Sequence[str]) -> None:
        """Ack now when the connection is free; when another thread has it (a receive waiting
        for deliveries), queue the acks: that thread sends them before it waits again, so an
        ack never waits out a long poll (and the broker's prefetch window opens at once)."""
        with self._pending_lock:
            self._pending_acks.extend(receipt_handles)
            self._consumer(queue).acked_at = time.monotonic()
        if self._lock.acquire(blocking=False):
            try:
                with self._mapped(f"ack on {queue}"):
                    pass  # ``_mapped`` sends the queued acks
            finally:
                self._lock.release()

    def _send_acks(self) -> None:
        with self._pending_lock:
            handles, self._pending_acks = self._pending_acks, []
        for handle in handles:
            delivery = self._settle(handle)
            if delivery is not None:
                self._channel.basic_ack(delivery.delivery_tag)

    def change_visibility(self, queue: str, receipt_handle: str, visibility_timeout: int) -> None:
        """Deliver the message again after ``visibility_timeout`` seconds: re-published with
        that delay, the original acked (FIFO: kept in place, unacked, until then)."""
        with self._mapped(f"hand back on {queue}"):
            delivery = self._unacked.get(receipt_handle)
            if delivery is None:
                return
            if is_fifo(queue):
                self._consumer(queue).hold_in_place(delivery, visibility_timeout, self._unacked)
                return
            self._republish(delivery, delivery.received.receive_count, visibility_timeout)

    def _republish(self, delivery: Delivery, receives: int, delay: int) -> None:
        """Send a copy (same message id, ``receives`` so far) and ack the original: unlike a
        requeue, this does not raise the broker's delivery count."""
        self._settle(delivery.received.receipt_handle)
        headers = {**own_headers(delivery.properties), RECEIVES_HEADER: receives}
        self._publish(delivery.queue, delivery.body, delivery.received.message_id, headers, delay)
        self._channel.basic_ack(delivery.delivery_tag)

    def extend_visibility(self, queue: str, receipt_handles: Sequence[str], visibility_timeout: int) -> None:
        """Nothing to do: a received message stays unacked until it is settled."""

    def dead_letter(self, message: ReceivedMessage, reason: str) -> str:
        dlq = dead_letter_queue_name(message.queue)
        with self._mapped(f"dead-letter on {message.queue}"):
            copy_id = random_uuid()
            headers: dict[str, Any] = dict(dead_letter_attributes(message, reason))
            if message.group_id is not None:
                headers[GROUP_HEADER] = message.group_id
            self._publish(dlq, message.body, copy_id, headers, 0)
            delivery = self._settle(message.receipt_handle)
            if delivery is not None:
                self._channel.basic_ack(delivery.delivery_tag)
        return copy_id

    def stats(self, queue: str) -> QueueStats:
        with self._mapped(f"stats of {queue}"):
            visible = self._topology.ready_count(self._ensure(queue)) or 0
            in_flight = sum(1 for delivery in self._unacked.values() if delivery.queue == queue)
            delayed = self._topology.delayed_count(queue)
        return QueueStats(visible, in_flight, delayed)

    def close(self) -> None:
        """Stop consuming, return the deliveries never handed out (re-published, so their
        delivery count does not rise; a FIFO queue's go back with the connection, to keep
        their order), and close: what is still unacked goes back to the broker."""
        with self._lock:
            if self._connection is not None:
                try:
                    self._return_unstarted()
                    self._connection.close()
                except (TimeoutError, *CONNECTION_ERRORS, amqp.exceptions.AMQPError):
                    self._connection.collect()
            self._connection, self._channel, self._admin = None, None, None
            self._forget()

    def _return_unstarted(self) -> None:
        consumers = list(self._consumers.values())
        for consumer in consumers:
            if consumer.tag is not None:
                self._channel.basic_cancel(consumer.tag)
        for consumer in consumers:
            if is_fifo(consumer.queue):
                continue
            for item in list(consumer.buffer):
                delivery = item.delivery
                self._republish(delivery, delivery.received.receive_count - 1, 0)
