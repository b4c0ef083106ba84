"""The envelope: one pydantic model, sent as plain JSON (no base64, no binary serialization).

A data object: it holds no client and does no I/O. Encoding checks the size limit, and
optional HMAC signing covers every field but the signature itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cloudq.errors import DecodeError, MessageTooLargeError, SignatureError
from cloudq.tracing import TRACEPARENT_PATTERN

#: Version 1: every message. Version 2 adds what a replay from the dead-letter queue carries
#: (``attempt_base``, ``history``); only replayed messages are written as version 2, so
#: workers of version 1 read every other message, and refuse a replayed one with a reason.
#: Version 4 adds a W3C ``traceparent`` (``cloudq.tracing``); only messages sent within a
#: trace are written as version 4. (Version 3 is the large-payload pointer of issue 15.)
ENVELOPE_VERSION = 1
REPLAY_ENVELOPE_VERSION = 2
TRACE_ENVELOPE_VERSION = 4
SUPPORTED_VERSIONS = (ENVELOPE_VERSION, REPLAY_ENVELOPE_VERSION, TRACE_ENVELOPE_VERSION)
#: Fields added after version 2 are left out of the signed form while unset, so a message
#: without them is signed as by a cloudq that did not know them (rolling upgrades with
#: signing keys).
FIELDS_AFTER_VERSION_2 = ("traceparent",)
#: A task id is a key in every result backend (DynamoDB allows 2048 bytes, UTF-8, not empty).
MAX_TASK_ID_CHARS = 255


def new_task_id() -> str:
    return str(uuid.uuid4())


class Message(BaseModel):
    """A task invocation in flight."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    v: int = ENVELOPE_VERSION
    id: str = Field(default_factory=new_task_id, min_length=1, max_length=MAX_TASK_ID_CHARS)
    task: str
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    #: Attempts already made before this broker message existed (retries that re-sent the
    #: message). The attempt number of a run is ``retries + receive_count``.
    retries: int = Field(default=0, ge=0)
    #: Epoch seconds before which the task must not run (countdown / eta).
    eta: float | None = None
    #: Epoch seconds after which the task is dropped instead of run.
    expires: float | None = None
    parent_id: str | None = None
    root_id: str | None = None
    callbacks: list[dict[str, Any]] = Field(default_factory=list)
    #: Version 2 (replayed messages): attempts spent by the task id before its replay from the
    #: dead-letter queue, so this life gets a fresh retry budget while the result record
    #: keeps counting every run.
    attempt_base: int | None = Field(default=None, ge=0)
    #: Version 2: the final errors of the task id's earlier lives, one line each, oldest first.
    history: list[str] | None = None
    #: Version 4: the W3C trace context of the send (``cloudq.tracing``).
    traceparent: str | None = Field(default=None, pattern=TRACEPARENT_PATTERN)
    #: Hex HMAC-SHA256 of the canonical envelope without this field.
    signature: str | None = None

    def encode(self, max_bytes: int) -> str:
        """The JSON body; raises ``MessageTooLargeError`` past ``max_bytes``."""
        body = self.model_dump_json(exclude_none=True)
        size = len(body.encode())
        if size > max_bytes:
            raise MessageTooLargeError(
                f"task {self.task!r} message is {size} bytes, over the broker limit of "
                f"{max_bytes} bytes; pass an id (and load the data in the task) instead of "
                "the data itself"
            )
        return body

    @classmethod
    def decode(cls, body: str, broker_message_id: str | None = None) -> Message:
        """Parse a received body; raises ``DecodeError`` with the reason.

        A body without an ``id`` (hand-written, or the fixed body a scheduler sends every
        tick) takes ``broker_message_id`` as its task id: stable across redeliveries of that
        broker message, and new for each message sent."""
        try:
            message = cls.model_validate_json(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "body"
            raise DecodeError(f"not a cloudq message: {where}: {first['msg']}") from exc
        if message.v not in SUPPORTED_VERSIONS:
            raise DecodeError(
                f"unsupported envelope version {message.v} (this worker reads versions "
                f"{', '.join(map(str, SUPPORTED_VERSIONS))}); upgrade cloudq on the workers"
            )
        if "id" not in message.model_fields_set:
            if not broker_message_id:
                raise DecodeError("not a cloudq message: id: missing, and no broker message id to use")
            message = message.model_copy(update={"id": broker_message_id[:MAX_TASK_ID_CHARS]})
        return message

    def replayed(self, attempts_so_far: int, final_error: str) -> Message:
        """This message sent again from the dead-letter queue: a fresh retry budget
        (``attempts_so_far`` become the base), its final error added to the history.
        Unsigned: the sender signs it again."""
        return self.model_copy(
            update={
                "v": max(self.v, REPLAY_ENVELOPE_VERSION),
                "retries": 0,
                "attempt_base": attempts_so_far,
                "history": [*(self.history or []), final_error],
                "signature": None,
            }
        )

    def traced(self, traceparent: str) -> Message:
        """This message carrying ``traceparent`` (version 4, or its own if higher)."""
        return self.model_copy(update={"v": max(self.v, TRACE_ENVELOPE_VERSION), "traceparent": traceparent})

    def canonical(self) -> bytes:
        """Deterministic bytes that the signature covers."""
        unset_later = {name for name in FIELDS_AFTER_VERSION_2 if getattr(self, name) is None}
        data = self.model_dump(mode="json", exclude={"signature", *unset_later})
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()

    def signed(self, key: str) -> Message:
        digest = hmac.new(key.encode(), self.canonical(), hashlib.sha256).hexdigest()
        return self.model_copy(update={"signature": digest})

    def verify(self, keys: Sequence[str]) -> None:
        """Raise ``SignatureError`` unless the signature matches one of ``keys`` (rotation)."""
        if self.signature is None:
            raise SignatureError("message is not signed and this app requires signatures")
        canonical = self.canonical()
        for key in keys:
            expected = hmac.new(key.encode(), canonical, hashlib.sha256).hexdigest()
            if hmac.compare_digest(expected, self.signature):
                return
        raise SignatureError("message signature does not match any configured signing key")
