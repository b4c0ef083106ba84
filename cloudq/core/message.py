"""The envelope: one pydantic model, sent as plain JSON (no base64, no binary serialization).

A data object: it holds no client and does no I/O. Encoding checks the size limit, and
optional HMAC signing covers every field but the signature itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cloudq.core.errors import DecodeError, MessageTooLargeError, SignatureError
from cloudq.core.ids import random_uuid
from cloudq.core.pointer import PayloadPointer
from cloudq.core.traceparent import TRACEPARENT_PATTERN

#: Version 1: every message. Version 2 adds what a replay from the dead-letter queue carries
#: (``attempt_base``, ``history``); only replayed messages are written as version 2, so
#: workers of version 1 read every other message, and refuse a replayed one with a reason.
#: Version 4 adds a W3C ``traceparent`` (``cloudq.tracing``); only messages sent within a
#: trace are written as version 4. (Version 3 is the large-payload pointer of issue 15.)
ENVELOPE_VERSION = 1
REPLAY_ENVELOPE_VERSION = 2
#: Version 3 adds ``payload``: the arguments are in the payload store (claim check); only
#: such messages are written as version 3 (``Message.with_payload``).
PAYLOAD_ENVELOPE_VERSION = 3
#: Version 4 adds ``traceparent``: the W3C trace context of the send; only traced messages
#: are written as version 4 (``Message.traced``).
TRACE_ENVELOPE_VERSION = 4
#: Version 5 adds the workflow fields (``callbacks``: what a chain runs next; ``chord``: the
#: chord a group member counts towards). Only messages that carry them are written as version
#: 5, so a worker that cannot run them refuses them (dead-letter, with the reason) instead of
#: dropping the callbacks.
WORKFLOW_ENVELOPE_VERSION = 5
#: Version 6 adds ``rate_slot``: the message was re-sent holding a slot of its task's rate
#: limit (``cloudq.runtime.flow``); only such messages are written as version 6.
FLOW_ENVELOPE_VERSION = 6
#: Version 7 adds ``task_token`` and ``heartbeat_seconds``: the body a Step Functions
#: ``.waitForTaskToken`` state sends (``cloudq.runtime.task_tokens`` reports back to it). Such
#: a body has no ``v``: it is version 7 because it carries a token.
STEPFUNCTIONS_ENVELOPE_VERSION = 7
SUPPORTED_VERSIONS = (
    ENVELOPE_VERSION,
    REPLAY_ENVELOPE_VERSION,
    PAYLOAD_ENVELOPE_VERSION,
    TRACE_ENVELOPE_VERSION,
    WORKFLOW_ENVELOPE_VERSION,
    FLOW_ENVELOPE_VERSION,
    STEPFUNCTIONS_ENVELOPE_VERSION,
)
#: Optional fields added after version 1, left out of the signed bytes when unset, so that a
#: message without them signs as version 1 senders signed it (rolling upgrades).
NEWER_FIELDS = (
    "attempt_base",
    "history",
    "payload",
    "traceparent",
    "chord",
    "rate_slot",
    "task_token",
    "heartbeat_seconds",
)
#: A task id is a key in every result backend (DynamoDB allows 2048 bytes, UTF-8, not empty).
MAX_TASK_ID_CHARS = 255
#: Step Functions' task tokens are at most 2048 characters (SendTaskSuccess's ``taskToken``).
MAX_TASK_TOKEN_CHARS = 2048


def new_task_id() -> str:
    return random_uuid()


# The default factories of the list and dict fields are Python functions, not the builtins
# ``list`` and ``dict``: building a model asks each factory's signature, and a builtin's is
# parsed from its text signature with ``tokenize``, whose regular expressions then compile
# (~1.5 ms of the first decode of a Lambda cold start, issue 14).
def _empty_list() -> list[Any]:
    return []


def _empty_dict() -> dict[str, Any]:
    return {}


class Link(BaseModel):
    """A task to send when another finishes (a signature, as an envelope carries it)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, defer_build=True)

    id: str = Field(min_length=1, max_length=MAX_TASK_ID_CHARS)
    task: str
    args: list[Any] = Field(default_factory=_empty_list)
    kwargs: dict[str, Any] = Field(default_factory=_empty_dict)
    #: ``False``: the finished task's result is prepended to ``args`` (``task.s()``);
    #: ``True``: the arguments are used as they are (``task.si()``).
    immutable: bool = False
    queue: str | None = None
    #: What runs after this one (the rest of a chain).
    callbacks: list[Link] = Field(default_factory=_empty_list)


class ChordLink(BaseModel):
    """The chord a group member counts towards: when all ``size`` members have finished,
    ``callback`` is sent with their results, in order. Member ``i`` has the task id
    ``chord_member_id(id, i)``, so the members need not be listed in every message."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, defer_build=True)

    id: str = Field(min_length=1, max_length=MAX_TASK_ID_CHARS - 12)
    size: int = Field(ge=1)
    callback: Link


def chord_member_id(chord_id: str, index: int) -> str:
    """The task id of member ``index`` of chord ``chord_id``."""
    return f"{chord_id}.{index}"


class Message(BaseModel):
    """A task invocation in flight."""

    # Built on first use (the first send or receive), not at ``import cloudq`` (issue 14).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, defer_build=True)

    v: int = ENVELOPE_VERSION
    id: str = Field(default_factory=new_task_id, min_length=1, max_length=MAX_TASK_ID_CHARS)
    task: str
    args: list[Any] = Field(default_factory=_empty_list)
    kwargs: dict[str, Any] = Field(default_factory=_empty_dict)
    #: Attempts already made before this broker message existed (retries that re-sent the
    #: message). The attempt number of a run is ``retries + receive_count``.
    retries: int = Field(default=0, ge=0)
    #: Epoch seconds before which the task must not run (countdown / eta).
    eta: float | None = None
    #: Epoch seconds after which the task is dropped instead of run.
    expires: float | None = None
    parent_id: str | None = None
    root_id: str | None = None
    #: Version 5: what runs after this task succeeds (a chain's next link).
    callbacks: list[Link] = Field(default_factory=_empty_list)
    #: Version 5: the chord this task is a member of.
    chord: ChordLink | None = None
    #: Version 2 (replayed messages): attempts spent by the task id before its replay from the
    #: dead-letter queue, so this life gets a fresh retry budget while the result record
    #: keeps counting every run.
    attempt_base: int | None = Field(default=None, ge=0)
    #: Version 2: the final errors of the task id's earlier lives, one line each, oldest first.
    history: list[str] | None = None
    #: Version 3: the arguments (``{"args": …, "kwargs": …}``) are this object of the payload
    #: store; ``args`` and ``kwargs`` are then empty. The signature covers it, hash included.
    payload: PayloadPointer | None = None
    #: Version 4: the W3C trace context of the send (``cloudq.tracing``).
    traceparent: str | None = Field(default=None, pattern=TRACEPARENT_PATTERN)
    #: Version 6: epoch seconds of the rate-limit slot this message holds (re-sent to wait for
    #: it); its first delivery runs without taking another.
    rate_slot: float | None = None
    #: Version 7: the task token of the Step Functions state that sent this body
    #: (``$$.Task.Token``); the run's end is reported to it.
    task_token: str | None = Field(default=None, min_length=1, max_length=MAX_TASK_TOKEN_CHARS)
    #: Version 7: the state's ``HeartbeatSeconds``; the run sends ``SendTaskHeartbeat`` twice
    #: as often.
    heartbeat_seconds: float | None = Field(default=None, gt=0)
    #: Hex HMAC-SHA256 of the canonical envelope without this field.
    signature: str | None = None
    #: Not a field (never sent nor read from a body): the message arrived in Celery's
    #: protocol (``cloudq.core.celery_protocol``: a ``CeleryMessage``), so its run also leaves
    #: Celery's result. A class attribute: a private attribute cost every message's
    #: construction a few microseconds.
    from_celery: ClassVar[bool] = False

    @model_validator(mode="before")
    @classmethod
    def _lowest_version(cls, data: Any) -> Any:
        """A message built with workflow fields and no explicit version is version 5; with a
        task token (a Step Functions body), version 7."""
        if not isinstance(data, dict) or "v" in data:
            return data
        if data.get("task_token") is not None:
            return {**data, "v": STEPFUNCTIONS_ENVELOPE_VERSION}
        if data.get("callbacks") or data.get("chord"):
            return {**data, "v": WORKFLOW_ENVELOPE_VERSION}
        return data

    def as_celery(self) -> Message:
        """This message, marked as having arrived in Celery's protocol (``model_copy`` keeps
        the mark)."""
        return CeleryMessage.model_construct(_fields_set=self.model_fields_set, **dict(self))

    @property
    def has_workflow(self) -> bool:
        return bool(self.callbacks) or self.chord is not None

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
        if message.has_workflow and message.v < WORKFLOW_ENVELOPE_VERSION:
            raise DecodeError(
                f"envelope version {message.v} cannot carry callbacks or a chord (version 5 does)"
            )
        if "id" not in message.model_fields_set:
            if not broker_message_id:
                raise DecodeError("not a cloudq message: id: missing, and no broker message id to use")
            message = message.model_copy(update={"id": broker_message_id[:MAX_TASK_ID_CHARS]})
        return message

    def with_payload(self, pointer: PayloadPointer) -> Message:
        """This message with its arguments offloaded to ``pointer`` (version 3, unsigned)."""
        return self.model_copy(
            update={
                "v": max(self.v, PAYLOAD_ENVELOPE_VERSION),
                "args": [],
                "kwargs": {},
                "payload": pointer,
                "signature": None,
            }
        )

    def replayed(self, attempts_so_far: int, final_error: str) -> Message:
        """This message sent again from the dead-letter queue: a fresh retry budget
        (``attempts_so_far`` become the base), its final error added to the history.
        Unsigned: the sender signs it again."""
        return self.model_copy(
            update={
                # The lowest version carrying its fields: a pointer needs version 3.
                "v": max(self.v, REPLAY_ENVELOPE_VERSION),
                "retries": 0,
                "rate_slot": None,
                "attempt_base": attempts_so_far,
                "history": [*(self.history or []), final_error],
                "signature": None,
            }
        )

    def traced(self, traceparent: str) -> Message:
        """This message carrying ``traceparent`` (version 4, or its own if higher)."""
        return self.model_copy(update={"v": max(self.v, TRACE_ENVELOPE_VERSION), "traceparent": traceparent})

    def holding_rate_slot(self, slot: float, eta: float) -> Message:
        """This message re-sent to run at ``slot``, the rate-limit slot it holds, delivered
        from ``eta`` (version 6, or its own if higher)."""
        update = {"v": max(self.v, FLOW_ENVELOPE_VERSION), "eta": eta, "rate_slot": slot}
        return self.model_copy(update=update)

    def canonical(self) -> bytes:
        """Deterministic bytes that the signature covers."""
        # Fields newer than version 1 are left out when unset, so that a message without them
        # has the canonical bytes older senders signed.
        unset_newer = {name for name in NEWER_FIELDS if getattr(self, name) is None}
        data = self.model_dump(mode="json", exclude={"signature", *unset_newer})
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


class CeleryMessage(Message):
    """A message that arrived in Celery's protocol (``Message.as_celery``)."""

    from_celery: ClassVar[bool] = True
