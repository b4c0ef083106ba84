"""The headers cloudq writes on a RabbitMQ message, and how a delivery's headers map back to
the message's own attributes: ``AMQPTransport`` publishes with them, ``Consumer`` reads them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RECEIVES_HEADER = "cloudq-receives"
GROUP_HEADER = "cloudq-group-id"
#: Written by older senders (it deduplicated nothing); still kept out of a message's attributes.
DEDUPLICATION_HEADER = "cloudq-deduplication-id"
#: When the message was sent (epoch milliseconds): ``ReceivedMessage.sent_timestamp_ms``.
SENT_HEADER = "cloudq-sent-ms"
OWN_HEADERS = frozenset({RECEIVES_HEADER, GROUP_HEADER, DEDUPLICATION_HEADER, SENT_HEADER})


def header_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def own_attributes(headers: Mapping[str, Any]) -> dict[str, str]:
    """A message's own attributes: its headers, less the broker's (``x-``) and cloudq's."""
    return {
        name: header_text(value)
        for name, value in headers.items()
        if not name.startswith("x-") and name not in OWN_HEADERS
    }


def own_headers(properties: Mapping[str, Any]) -> dict[str, Any]:
    """The headers to re-publish with: the message's own, without the broker's history."""
    headers = dict(properties.get("application_headers") or {})
    return {name: value for name, value in headers.items() if not name.startswith("x-")}
