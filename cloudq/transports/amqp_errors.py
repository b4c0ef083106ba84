"""The one boundary where amqp and socket errors become ``TransportError``: the context of
``AMQPTransport._mapped``, around every call that uses the connection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cloudq.core.errors import TransportError
from cloudq.transports.amqp_topology import amqp

if TYPE_CHECKING:
    from cloudq.transports.amqp import AMQPTransport

#: Connection-level failures: the connection is dropped and made again on the next call.
CONNECTION_ERRORS = (OSError, amqp.exceptions.ConnectionError, amqp.exceptions.RecoverableConnectionError)


class Mapped:
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
