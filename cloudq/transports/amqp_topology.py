"""The queues ``AMQPTransport`` declares on RabbitMQ, and their arguments (amqp.py).

Topology of a logical queue ``emails`` of app ``shop`` (names from core/naming.py):

- ``shop-emails``: a durable *quorum* queue, ``x-delivery-limit`` redeliveries (a crashed
  consumer's messages come back with the broker's delivery count raised), then dead-lettered
  at least once (``x-dead-letter-strategy``) through the default exchange to
- ``shop-emails-dlq``: the dead-letter queue (quorum). cloudq's own dead-lettering publishes
  there with the reason as the ``cloudq-dead-letter`` header (``dead_letter_attributes``).
- ``shop-emails.delay-<N>s``: one quorum queue per delay in use, with a message TTL of N
  seconds, dead-lettering back to ``shop-emails``: delays without the delayed-message plugin.
  Each expires (``x-expires``) when unused for a while after its TTL.

``Topology`` declares each queue once per connection (a passive check first, so a queue that
exists with other arguments is used as it is), and re-declares delay queues often enough that
they never expire with messages inside.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any

from cloudq.core.errors import MissingExtraError
from cloudq.core.naming import (
    dead_letter_queue_name,
    delay_queue_name,
    is_celery_queue,
    is_dead_letter_queue,
    is_fifo,
    physical_name,
)

try:
    import amqp  # the transport imports the client from here: one guard
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingExtraError("amqp", "amqp") from exc

__all__ = ["DELIVERY_LIMIT", "Topology", "amqp"]

#: Redeliveries after a crash (connection lost while unacked) before the broker dead-letters.
DELIVERY_LIMIT = 10
#: A delay queue unused for its TTL plus this long is deleted by the broker.
DELAY_QUEUE_IDLE_MS = 120_000
#: Re-declare a delay queue before publishing to it at least this often (re-declaring resets
#: its expiry, so it never expires with messages inside).
DELAY_REDECLARE_SECONDS = 60.0
#: Dead-lettering from a quorum queue at least once (3.10+) needs ``reject-publish`` overflow.
AT_LEAST_ONCE = {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}


class Topology:
    """The physical queues of one transport; ``channel()`` gives the channel to declare on."""

    def __init__(
        self,
        prefix: str,
        delivery_limit: int,
        channel: Callable[[], Any],
        celery_queues: Collection[str] = (),
    ) -> None:
        self.prefix = prefix
        #: Queues Celery also uses: named and declared as Celery declares them (classic, durable).
        self.celery_queues = frozenset(celery_queues)
        self.delivery_limit = delivery_limit
        self._channel = channel
        self._declared: set[str] = set()
        self._delay_declared: dict[str, float] = {}
        #: Logical queue → the delay queues this transport has used for it.
        self.delay_queues: dict[str, set[str]] = {}

    def physical(self, queue: str) -> str:
        return physical_name(self.prefix, queue, self.celery_queues)

    def arguments(self, queue: str) -> dict[str, Any]:
        if is_celery_queue(queue, self.celery_queues):
            # As Celery declares it (a classic queue), so that Celery's own declaration of the
            # same queue, before or after, agrees; cloudq dead-letters into ``<queue>-dlq``
            # itself, and counts attempts in its result backend (a classic queue counts none).
            return {}
        arguments: dict[str, Any] = {"x-queue-type": "quorum"}
        if not is_dead_letter_queue(queue):
            arguments |= {
                "x-delivery-limit": self.delivery_limit,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": self.physical(dead_letter_queue_name(queue)),
                **AT_LEAST_ONCE,
            }
        if is_fifo(queue):
            # One consumer at a time gets a FIFO queue's messages, so order holds across workers.
            arguments["x-single-active-consumer"] = True
        return arguments

    def _declare(self, physical: str, arguments: dict[str, Any]) -> None:
        try:
            self._channel().queue_declare(physical, passive=True)
        except amqp.exceptions.NotFound:  # it closed the channel; ``channel()`` opens another
            self._channel().queue_declare(physical, durable=True, auto_delete=False, arguments=arguments)

    def ensure(self, queue: str) -> str:
        """Declare ``queue`` (and its dead-letter queue) when missing; its physical name."""
        physical = self.physical(queue)
        if physical not in self._declared:
            if not is_dead_letter_queue(queue):
                dlq = dead_letter_queue_name(queue)
                self._declare(self.physical(dlq), self.arguments(dlq))
            self._declare(physical, self.arguments(queue))
            self._declared.add(physical)
        return physical

    def ensure_delay(self, queue: str, seconds: int) -> str:
        """The queue holding ``queue``'s messages for ``seconds``, then dead-lettering them
        back: the delayed-message plugin is not needed."""
        target = self.ensure(queue)
        name = delay_queue_name(target, seconds)
        last_declared = self._delay_declared.get(name, -DELAY_REDECLARE_SECONDS)
        if time.monotonic() - last_declared >= DELAY_REDECLARE_SECONDS:
            arguments = {
                "x-queue-type": "quorum",
                "x-message-ttl": seconds * 1000,
                "x-expires": seconds * 1000 + DELAY_QUEUE_IDLE_MS,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": target,
                **AT_LEAST_ONCE,
            }
            self._channel().queue_declare(name, durable=True, auto_delete=False, arguments=arguments)
            self._delay_declared[name] = time.monotonic()
            self.delay_queues.setdefault(queue, set()).add(name)
        return name

    def ready_count(self, physical: str) -> int | None:
        """The broker's count of ready messages; ``None`` when the queue is gone."""
        try:
            return int(self._channel().queue_declare(physical, passive=True).message_count)
        except amqp.exceptions.NotFound:
            return None

    def delayed_count(self, queue: str) -> int:
        """The ready messages in ``queue``'s delay queues (those this transport has used)."""
        delayed = 0
        delay_queues = self.delay_queues.get(queue, set())
        for name in sorted(delay_queues):
            count = self.ready_count(name)
            if count is None:
                delay_queues.discard(name)  # expired
            delayed += count or 0
        return delayed

    def forget(self) -> None:
        """A new connection declares again."""
        self._declared.clear()
        self._delay_declared.clear()
