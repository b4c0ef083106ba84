"""How each broker keeps a Celery queue's messages, and the one form the codec reads.

The codec (``cloudq.core.celery_protocol``) reads kombu's message as JSON, which is what kombu
keeps on Redis. On SQS kombu writes the base64 of that JSON (its ``sqs_base64_encoding``, on by
default); these functions turn one into the other, for the SQS transport and for the Lambda
handler, whose records are SQS bodies as they were sent. No import of kombu.
"""

from __future__ import annotations

import base64
import binascii


def from_sqs(body: str) -> str:
    """An SQS body of a Celery queue as kombu's message JSON. Like kombu, a body that is not
    base64 is taken as it is (the codec then says what it is not)."""
    try:
        return base64.b64decode(body, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return body


def to_sqs(message_json: str) -> str:
    """Kombu's message JSON as kombu writes it to SQS."""
    return base64.b64encode(message_json.encode()).decode()
