"""How each broker keeps a Celery queue's messages, and the one form the codec reads.

The codec (``cloudq.core.celery_protocol``) reads kombu's message as JSON, which is what kombu
keeps on Redis. On SQS kombu writes the base64 of that JSON (its ``sqs_base64_encoding``, on by
default); on RabbitMQ the message is an AMQP message: the body (``[args, kwargs, embed]``) as
it is, Celery's headers as AMQP headers, the content type and encoding as AMQP properties.
These functions turn each into that JSON and back, for the SQS and AMQP transports and for
the Lambda handler, whose records are SQS bodies as they were sent. No import of kombu.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from cloudq.transports.amqp_headers import OWN_HEADERS


def from_sqs(body: str) -> str:
    """An SQS body of a Celery queue as kombu's message JSON: its base64 decoded when that is
    a JSON object's text (kombu's message is one). Any other body is taken as it is (the
    codec then says what it is not), so that ``to_sqs`` gives back the body as it came (a
    dead letter keeps it)."""
    try:
        text = base64.b64decode(body, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return body
    return text if text.startswith("{") else body


def to_sqs(message_json: str) -> str:
    """Kombu's message JSON as kombu writes it to SQS (base64); any other body (one that
    ``from_sqs`` took as it was) as it is."""
    if not message_json.startswith("{"):
        return message_json
    return base64.b64encode(message_json.encode()).decode()


def from_amqp(body: bytes | str, properties: Mapping[str, Any]) -> str:
    """An AMQP delivery of a Celery queue as kombu's message JSON: Celery's headers (AMQP
    headers), its content type and encoding (AMQP properties), and the body as it came (text,
    or its base64 when it is not UTF-8: a binary serializer's, refused by the codec unread)."""
    encoding, text = None, body
    if isinstance(body, bytes):
        try:
            text = body.decode()
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(body).decode(), "base64"
    headers = properties.get("application_headers") or {}
    envelope = {
        "body": text,
        "content-type": properties.get("content_type"),
        "content-encoding": properties.get("content_encoding"),
        "headers": {name: _plain(value) for name, value in headers.items() if name not in OWN_HEADERS},
        "properties": {
            "body_encoding": encoding,
            **{name: _plain(properties.get(name)) for name in _AMQP_PROPERTIES},
        },
    }
    return json.dumps(envelope, ensure_ascii=False, default=str)


def to_amqp(message_json: str) -> tuple[bytes, dict[str, Any]] | None:
    """Kombu's message JSON as kombu publishes it on RabbitMQ: the body and the AMQP
    properties (Celery's headers among them); ``None`` when it is not kombu's message."""
    try:
        envelope = json.loads(message_json)
        headers, properties = envelope["headers"], envelope.get("properties") or {}
        body: str = envelope["body"]
        raw = (
            base64.b64decode(body, validate=True)
            if properties.get("body_encoding") == "base64"
            else body.encode()
        )
    except (ValueError, TypeError, KeyError, AttributeError, binascii.Error, RecursionError):
        return None
    if not isinstance(headers, dict):
        return None
    amqp_properties = {
        name: properties[name] for name in _AMQP_PROPERTIES if properties.get(name) is not None
    }
    amqp_properties |= {
        "content_type": envelope.get("content-type"),
        "content_encoding": envelope.get("content-encoding"),
        "application_headers": headers,
    }
    return raw, amqp_properties


#: The AMQP properties kombu sets on a Celery message besides its headers and content type.
_AMQP_PROPERTIES = ("correlation_id", "reply_to", "delivery_mode", "priority")


def _plain(value: Any) -> Any:
    """An AMQP header value as JSON: py-amqp gives bytes for some strings."""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value
