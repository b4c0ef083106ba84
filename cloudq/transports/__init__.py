"""Broker engines behind the ``Transport`` protocol. Engines are imported only when used."""

from __future__ import annotations

from cloudq.core.clock import SYSTEM_CLOCK, Clock
from cloudq.core.config import Settings
from cloudq.core.naming import queue_prefix
from cloudq.core.urls import parse_url
from cloudq.transports.base import (
    OutgoingMessage,
    QueueStats,
    ReceivedMessage,
    SendResult,
    Transport,
    dead_letter_queue_name,
    is_fifo,
    require_sent,
)

__all__ = [
    "OutgoingMessage",
    "QueueStats",
    "ReceivedMessage",
    "SendResult",
    "Transport",
    "dead_letter_queue_name",
    "is_fifo",
    "require_sent",
    "transport_from_url",
]


def transport_from_url(
    url: str, app_name: str, settings: Settings, *, clock: Clock = SYSTEM_CLOCK
) -> Transport:
    """Build the engine a broker URL names. Queue names get the app name as prefix; the
    in-process engine keeps time by ``clock``."""
    limits = {"max_message_bytes": settings.max_message_bytes} if settings.max_message_bytes else {}
    parsed = parse_url(url, ("sqs", "memory", "redis", "amqp", "amqps"), "broker")
    if parsed.scheme == "memory":
        from cloudq.transports.memory import MemoryTransport

        return MemoryTransport(**limits, clock=clock)
    if parsed.scheme == "sqs":
        from cloudq.transports.sqs import SQSTransport

        return SQSTransport(
            prefix=queue_prefix(app_name),
            endpoint_url=parsed.options.get("endpoint_url"),
            region_name=parsed.options.get("region"),
            **limits,
            send_timeout=settings.send_timeout,
            send_attempts=settings.send_attempts,
            celery_queues=settings.celery_queues,
            aws_http=settings.aws_http,
        )
    if parsed.scheme in ("amqp", "amqps"):
        from cloudq.transports.amqp import AMQPTransport

        return AMQPTransport.from_url(
            url, prefix=queue_prefix(app_name), celery_queues=settings.celery_queues, **limits
        )
    from cloudq.transports.redis import RedisTransport

    return RedisTransport.from_url(url, prefix=queue_prefix(app_name), celery_queues=settings.celery_queues)
