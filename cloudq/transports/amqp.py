"""``amqp://`` / ``amqps://``: RabbitMQ 3.10+ (Amazon MQ for RabbitMQ on AWS) through ``amqp``.

The client is ``amqp`` (py-amqp), the one Celery and kombu use: maintained with them, pure
Python, synchronous (no I/O loop thread to own), with publisher confirms.

Topology of a logical queue ``emails`` of app ``shop`` (names from ``amqp_names``):

- ``shop-emails``: a durable *quorum* queue, ``x-delivery-limit`` redeliveries (a crashed
  consumer's messages come back with the broker's delivery count raised), then dead-lettered
  at least once (``x-dead-letter-strategy``) through the default exchange to
- ``shop-emails-dlq``: the dead-letter queue (quorum). cloudq's own dead-lettering publishes
  there with the reason as the ``cloudq-dead-letter`` header (``dead_letter_attributes``).
- ``shop-emails.delay-<N>s``: one quorum queue per delay in use, with a message TTL of N
  seconds, dead-lettering back to ``shop-emails``: delays without the delayed-message plugin.
  Each expires (``x-expires``) when unused for a while after its TTL.

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
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import unquote, urlsplit

from cloudq.core.errors import ConfigurationError, TransportError
from cloudq.core.ids import random_uuid
from cloudq.transports.amqp_consumer import BATCH_SIZE, Consumer, Delivery, Held
from cloudq.transports.amqp_topology import DELIVERY_LIMIT, Topology, amqp
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
RECEIVES_HEADER = "cloudq-receives"
GROUP_HEADER = "cloudq-group-id"
#: Written by older senders (it deduplicated nothing); still kept out of a message's attributes.
DEDUPLICATION_HEADER = "cloudq-deduplication-id"
#: When the message was sent (epoch milliseconds): ``ReceivedMessage.sent_timestamp_ms``.
SENT_HEADER = "cloudq-sent-ms"
OWN_HEADERS = frozenset({RECEIVES_HEADER, GROUP_HEADER, DEDUPLICATION_HEADER, SENT_HEADER})
#: Connection-level failures: the connection is dropped and made again on the next call.
CONNECTION_ERRORS = (OSError, amqp.exceptions.ConnectionError, amqp.exceptions.RecoverableConnectionError)


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
    ) -> None:
        self.host, self.prefix, self.virtual_host = host, prefix, virtual_host
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
        self._topology = Topology(prefix, delivery_limit, self._admin_channel)

    @classmethod
    def from_url(cls, url: str, prefix: str = "", **options: Any) -> AMQPTransport:
        """``amqp://user:password@host:5672/vhost?delivery_limit=10``; ``amqps://`` uses TLS
        (port 5671, as Amazon MQ). The vhost is the path: ``//`` or none is ``/``."""
        parts = urlsplit(url)
        secure = parts.scheme == "amqps"
        try:
            port = parts.port or (5671 if secure else 5672)
        except ValueError as exc:
            raise ConfigurationError(f"bad port in broker URL {url!r}") from exc
        vhost = unquote(parts.path[1:]) if parts.path not in ("", "/") else "/"
        query = dict(pair.split("=", 1) for pair in parts.query.split("&") if "=" in pair)
        if "delivery_limit" in query:
            options.setdefault("delivery_limit", _int_option(url, query["delivery_limit"]))
        return cls(
            f"{parts.hostname or '127.0.0.1'}:{port}",
            prefix,
            userid=unquote(parts.username or "guest"),
            password=unquote(parts.password or "guest"),
            virtual_host=vhost,
            ssl=secure,
            **options,
        )

    def describe(self) -> str:
        return f"RabbitMQ at {self.host} vhost {self.virtual_host}"

    # -- connection ----------------------------------------------------------------------

    def _mapped(self, what: str) -> _Mapped:
        """The one boundary where amqp and socket errors become ``TransportError``: holds the
        connection's lock, and sends the acks queued while another thread had it."""
        return _Mapped(self, what)

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
            consumer = self._consumers.setdefault(queue, Consumer(queue))
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
        # is not set: ``_on_delivery`` still reads it from messages of older senders).
        payload = amqp.Message(
            body,
            message_id=message_id,
            delivery_mode=2,  # persistent
            application_headers={**headers, SENT_HEADER: int(time.time() * 1000)},
        )
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
        while True:
            with self._mapped(f"receive from {queue}"):
                self._consume(queue, limit)
                got = self._take(queue, limit)
                remaining = deadline - time.monotonic()
                if not got:
                    wait = min(slice_seconds, remaining) if remaining > 0 else SHORT_POLL_SECONDS
                    self._drain(queue, limit, wait)
                    got = self._take(queue, limit)
                acks_flowing = self._holding(queue) > 0 and self._consumer(queue).acks_flowing()
            if got or remaining <= 0:
                return got
            if not acks_flowing:
                slice_seconds = min(2 * slice_seconds, DRAIN_SLICE_SECONDS)

    def _drain(self, queue: str, limit: int, seconds: float) -> None:
        """Wait up to ``seconds`` for a delivery, then take what else has arrived (until
        ``limit`` are buffered for ``queue``)."""
        consumer = self._consumer(queue)
        while len(consumer.buffer) < limit:
            self._send_acks()
            try:
                self._connection.drain_events(timeout=seconds)
            except TimeoutError:  # nothing (more) arrived
                return
            seconds = 0.0001

    def _holding(self, queue: str) -> int:
        """Deliveries of ``queue`` handed out and not settled yet."""
        buffered = {id(item.delivery) for item in self._consumer(queue).buffer}
        return sum(1 for d in self._unacked.values() if d.queue == queue and id(d) not in buffered)

    def _consume(self, queue: str, limit: int) -> None:
        """Consume ``queue`` with a prefetch of the messages the caller holds (handed out, not
        settled) plus ``limit``, plus one batch ahead while acks keep coming (the module's
        docstring): the broker pushes no more than the caller asked for beyond what it has
        (the worker asks for its free threads and look-ahead, and acks each message as its
        task ends). A consumer is made again when that prefetch is too small, or far too big
        (a burst is over); the deliveries already here stay."""
        physical = self._ensure(queue)
        consumer = self._consumer(queue)
        ahead = BATCH_SIZE if consumer.acks_flowing() else 0
        wanted = self._holding(queue) + limit + ahead
        if consumer.keeps_prefetch(wanted):
            return
        if consumer.tag is not None:
            self._channel.basic_cancel(consumer.tag)
        self._channel.basic_qos(0, wanted, False)  # per consumer: quorum queues have no global qos
        consumer.tag = self._channel.basic_consume(
            physical,
            callback=lambda raw: self._on_delivery(queue, raw),
            on_cancel=lambda tag: consumer.cancelled(),
        )
        consumer.prefetch = wanted

    def _on_delivery(self, queue: str, raw: Any) -> None:
        properties = dict(raw.properties)
        headers = dict(properties.get("application_headers") or {})
        handle = f"{self._generation}.{raw.delivery_tag}"
        body = raw.body.decode() if isinstance(raw.body, bytes) else raw.body
        received = ReceivedMessage(
            queue=queue,
            message_id=str(properties.get("message_id") or handle),
            receipt_handle=handle,
            body=body,
            receive_count=int(headers.get(RECEIVES_HEADER, 0)) + int(headers.get("x-delivery-count", 0)) + 1,
            sent_timestamp_ms=int(headers.get(SENT_HEADER) or properties.get("timestamp", 0) * 1000),
            attributes=_attributes(headers),
            group_id=_text(headers[GROUP_HEADER]) if GROUP_HEADER in headers else None,
        )
        delivery = Delivery(queue, raw.delivery_tag, body, properties, received)
        self._unacked[handle] = delivery
        self._consumer(queue).buffer.append(Held(delivery))

    def _take(self, queue: str, limit: int) -> list[ReceivedMessage]:
        """Hand out buffered deliveries in order; on a FIFO queue never two of one group at
        once (the others stay buffered, in order, until the group is free)."""
        now = time.time()
        consumer = self._consumer(queue)
        buffered = consumer.buffer
        busy: set[str | None] = set()
        if is_fifo(queue):
            inside = {id(item.delivery) for item in buffered}
            handed_out = [d for d in self._unacked.values() if d.queue == queue and id(d) not in inside]
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
        consumer.buffer = keep
        return got

    # -- settling ------------------------------------------------------------------------

    def _settle(self, handle: str) -> Delivery | None:
        """Take a delivery out of this transport's books; ``None`` when the handle is stale."""
        delivery = self._unacked.pop(handle, None)
        if delivery is not None:
            consumer = self._consumer(delivery.queue)
            consumer.buffer = [item for item in consumer.buffer if item.delivery is not delivery]
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
                self._hold_in_place(delivery, visibility_timeout)
                return
            self._republish(delivery, delivery.received.receive_count, visibility_timeout)

    def _republish(self, delivery: Delivery, receives: int, delay: int) -> None:
        """Send a copy (same message id, ``receives`` so far) and ack the original: unlike a
        requeue, this does not raise the broker's delivery count."""
        self._settle(delivery.received.receipt_handle)
        headers = {**_own_headers(delivery.properties), RECEIVES_HEADER: receives}
        self._publish(delivery.queue, delivery.body, delivery.received.message_id, headers, delay)
        self._channel.basic_ack(delivery.delivery_tag)

    def _hold_in_place(self, delivery: Delivery, seconds: int) -> None:
        received = delivery.received
        # A new handle: the old one is stale, as on SQS; the next receive counts one more.
        handle = f"{received.receipt_handle}+"
        again = replace(received, receipt_handle=handle, receive_count=received.receive_count + 1)
        self._settle(received.receipt_handle)
        moved = Delivery(delivery.queue, delivery.delivery_tag, delivery.body, delivery.properties, again)
        self._unacked[handle] = moved
        self._consumer(delivery.queue).buffer.insert(0, Held(moved, time.time() + seconds))

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
            delayed = 0
            delay_queues = self._topology.delay_queues.get(queue, set())
            for name in sorted(delay_queues):
                count = self._topology.ready_count(name)
                if count is None:
                    delay_queues.discard(name)  # expired
                delayed += count or 0
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


class _Mapped:
    """The context of ``AMQPTransport._mapped``: a class, not a generator-based context
    manager, which would cost every send, receive and ack ~3 µs more."""

    __slots__ = ("transport", "what")

    def __init__(self, transport: AMQPTransport, what: str) -> None:
        self.transport, self.what = transport, what

    def __enter__(self) -> None:
        self.transport._lock.acquire()
        try:
            self.transport._send_acks()
        except BaseException as exc:
            self.__exit__(type(exc), exc, exc.__traceback__)  # maps it, releases the lock
            raise

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        transport = self.transport
        try:
            if isinstance(exc, CONNECTION_ERRORS):
                transport._drop()
                raise TransportError(f"RabbitMQ at {transport.host} failed ({self.what}): {exc}") from exc
            if isinstance(exc, amqp.exceptions.AMQPError):
                transport._drop()  # a channel error closed a channel: start again cleanly
                raise TransportError(f"RabbitMQ refused {self.what}: {exc}") from exc
        finally:
            transport._lock.release()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _attributes(headers: Mapping[str, Any]) -> dict[str, str]:
    """A message's own attributes: its headers, less the broker's (``x-``) and cloudq's."""
    return {
        name: _text(value)
        for name, value in headers.items()
        if not name.startswith("x-") and name not in OWN_HEADERS
    }


def _own_headers(properties: Mapping[str, Any]) -> dict[str, Any]:
    """The headers to re-publish with: the message's own, without the broker's history."""
    headers = dict(properties.get("application_headers") or {})
    return {name: value for name, value in headers.items() if not name.startswith("x-")}


def _int_option(url: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigurationError(f"delivery_limit in {url!r} must be a whole number") from exc
