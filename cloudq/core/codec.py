"""The message codec: the one place a body is encoded or decoded, and where the claim check
lives.

encode: offload the arguments when the body would pass the threshold (a version 3 pointer
instead) → sign → size check. decode: parse → verify the signature (it covers the pointer and
the object's hash). The arguments of a pointer are fetched later, by the executor, once it
has claimed the task (``load_arguments``): a duplicate delivery of a task that already
succeeded is acknowledged without reading an object that may be gone.

Results too large for the backend go to the same store (``offload_value``); ``AsyncResult``
reads them with ``load_value``. The app and the executor use this; the worker and the Lambda
handler never read a body.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from cloudq.core import celery_protocol
from cloudq.core.errors import (
    ConfigurationError,
    DecodeError,
    PayloadStoreError,
    SignatureError,
)
from cloudq.core.message import MAX_TASK_TOKEN_CHARS, Message
from cloudq.core.naming import is_celery_queue
from cloudq.core.pointer import ARGUMENTS_FOLDER, RESULTS_FOLDER, PayloadPointer, digest

if TYPE_CHECKING:
    from cloudq.app.base import CloudQ
    from cloudq.core.schedules import PeriodicTask
    from cloudq.payloads.base import PayloadStore

logger = logging.getLogger("cloudq.codec")  # its name before the move

#: Room left under the broker's limit by the default threshold, for what a message gains in
#: flight: a signature, retry counts, an eta, a replay's history.
PAYLOAD_HEADROOM_BYTES = 16 * 1024


class Codec:
    """Bodies of one app: its signing keys, its broker's limit, its payload store."""

    def __init__(self, app: CloudQ) -> None:
        self.app = app

    @property
    def store(self) -> PayloadStore | None:
        return self.app.payload_store

    def _limit(self) -> int:
        broker = self.app.transport.max_message_bytes
        return min(self.app.settings.max_message_bytes or broker, broker)

    def threshold(self) -> int:
        """Bodies longer than this (bytes) have their arguments offloaded."""
        chosen = self.app.settings.payload_threshold
        return chosen if chosen is not None else max(self._limit() - PAYLOAD_HEADROOM_BYTES, 0)

    # -- messages ------------------------------------------------------------------------

    def is_celery(self, queue: str | None) -> bool:
        """Whether ``queue``'s bodies are Celery's (setting ``celery_queues``)."""
        celery_queues = self.app.settings.celery_queues
        return bool(celery_queues) and queue is not None and is_celery_queue(queue, celery_queues)

    def is_stepfunctions(self, queue: str | None) -> bool:
        """Whether Step Functions sends to ``queue`` (setting ``stepfunctions_queues``)."""
        return queue is not None and queue in self.app.settings.stepfunctions_queues

    def encode(self, message: Message, queue: str | None = None) -> str:
        """The body of ``message``: its arguments offloaded when the body would be over the
        threshold (and a store is configured), signed with the first signing key (if any),
        within the broker's size limit (else ``MessageTooLargeError``). For a Celery queue,
        Celery's protocol 2 instead (never offloaded nor signed: Celery reads neither)."""
        if queue is not None and self.is_celery(queue):
            return celery_protocol.encode(message, queue, self._limit())
        store = self.store
        if store is not None and message.payload is None:
            size = len(self._signed(message).model_dump_json(exclude_none=True).encode())
            if size > self.threshold():
                arguments = {"args": message.args, "kwargs": message.kwargs}
                message = message.with_payload(self._put(store, ARGUMENTS_FOLDER + message.id, arguments))
        return self._signed(message).encode(self._limit())

    def _signed(self, message: Message) -> Message:
        keys = self.app.settings.signing_keys
        if not keys:
            return message
        return message.model_copy(update={"signature": None}).signed(keys[0])

    def parse(self, body: str, broker_message_id: str | None = None, queue: str | None = None) -> Message:
        """The envelope of ``body`` (received from ``queue``), unverified (``DecodeError`` if
        it is not one). A Celery queue's bodies are Celery's (``cloudq.core.celery_protocol``);
        the others are cloudq's, and a Celery body there is refused saying so."""
        if self.is_celery(queue):
            return celery_protocol.decode(body)
        try:
            return Message.decode(body, broker_message_id)
        except DecodeError as exc:
            if queue is not None and celery_protocol.looks_like_celery(body):
                raise DecodeError(
                    f"a Celery message on queue {queue!r}, which is not one of celery_queues: "
                    f"add it there (CLOUDQ_CELERY_QUEUES) to run Celery's messages on it"
                ) from exc
            raise

    def decode(self, body: str, broker_message_id: str | None = None, queue: str | None = None) -> Message:
        """The envelope of a body received from ``queue``, its signature verified when the app
        signs, except on a Celery queue: Celery does not sign (docs/guides/celery.md).
        A version 3 message keeps its pointer: see ``load_arguments``.

        Step Functions' form (docs/guides/step-functions.md) is the envelope without ``v`` or ``id``
        (the SQS message id is its task id), with ``task_token`` and ``heartbeat_seconds``:
        ``{"task": …, "args": […], "kwargs": {…}, "task_token": …, "heartbeat_seconds": 60}``.
        It is run only on a queue of ``stepfunctions_queues``, and there unsigned even when the
        app signs (Step Functions cannot sign): who may send to that queue is the queue
        policy's to say. A re-sent one (a retry's hop) is signed as any other."""
        message = self.parse(body, broker_message_id, queue)
        if message.task_token is not None and not self.is_stepfunctions(queue):
            raise DecodeError(
                f"a Step Functions body (it carries a task token) on queue {queue!r}, which is not "
                "one of stepfunctions_queues: add it there (CLOUDQ_STEPFUNCTIONS_QUEUES)"
            )
        if self.app.settings.signing_keys and not self.is_celery(queue) and not _from_stepfunctions(message):
            message.verify(self.app.settings.signing_keys)
        return message

    @staticmethod
    def schedule_body(periodic: PeriodicTask) -> str:
        """The fixed body EventBridge Scheduler sends every tick: no id (each tick's task id
        is its SQS message id) and unsigned (a signature would cover an id the body lacks)."""
        message = Message(task=periodic.task, args=periodic.args, kwargs=periodic.kwargs)
        return message.model_dump_json(include={"v", "task", "args", "kwargs"})

    def task_token_of(self, body: str, queue: str | None) -> str | None:
        """The task token of a body refused on a Step Functions queue (``decode`` failed), so
        that its state fails at once rather than at its timeout; ``None`` on other queues."""
        if not self.is_stepfunctions(queue):
            return None
        try:
            envelope = json.loads(body)
        except (ValueError, RecursionError):
            return None
        token = envelope.get("task_token") if isinstance(envelope, dict) else None
        return token if isinstance(token, str) and 0 < len(token) <= MAX_TASK_TOKEN_CHARS else None

    @staticmethod
    def describe(body: str) -> tuple[str | None, str | None]:
        """(task id, task name) of any body, for listings: ``None`` where it has none."""
        try:
            envelope = json.loads(body)
        except (ValueError, RecursionError):
            return None, None  # poison bodies are listed as they are
        if not isinstance(envelope, dict):
            return None, None
        if isinstance(envelope.get("headers"), dict):  # kombu's form (a Celery queue's)
            envelope = envelope["headers"]
        task_id, task = envelope.get("id"), envelope.get("task")
        return (task_id if isinstance(task_id, str) else None, task if isinstance(task, str) else None)

    def load_arguments(self, message: Message) -> tuple[list[Any], dict[str, Any]]:
        """The JSON arguments of ``message``, fetched from the store for a pointer.

        Raises ``PayloadMissingError`` (the object is gone), ``SignatureError`` (it is not
        the object the pointer names) or ``PayloadStoreError`` (the store failed)."""
        if message.payload is None:
            return message.args, message.kwargs
        loaded = self._get(message.payload)
        if not isinstance(loaded, dict) or not isinstance(loaded.get("args"), list):
            raise DecodeError(f"payload object {message.payload.key} holds no arguments")
        kwargs = loaded.get("kwargs") or {}
        if not isinstance(kwargs, dict):
            raise DecodeError(f"payload object {message.payload.key} holds no keyword arguments")
        return loaded["args"], kwargs

    def release(self, message: Message) -> None:
        """Delete the argument object of a task that succeeded (``payload_delete_on_success``).
        Best effort: an object left behind expires by the store's rule."""
        if message.payload is None:
            return
        store = self.store
        if store is None or not self.app.settings.payload_delete_on_success:
            return
        try:
            store.delete(message.payload.key)
        except PayloadStoreError as exc:
            logger.warning("payload object %s not deleted (it expires instead): %s", message.payload.key, exc)

    # -- results -------------------------------------------------------------------------

    def offload_value(self, task_id: str, value: Any) -> PayloadPointer | None:
        """Store a result value too large for the backend; ``None`` without a store."""
        store = self.store
        return None if store is None else self._put(store, RESULTS_FOLDER + task_id, value)

    def load_value(self, pointer: PayloadPointer) -> Any:
        return self._get(pointer)

    # -- objects -------------------------------------------------------------------------

    def _put(self, store: PayloadStore, name: str, value: Any) -> PayloadPointer:
        data = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
        sha = digest(data)
        # The hash in the key: a re-sent message whose arguments changed never reuses an object.
        key = store.key_for(f"{name}/{sha[:16]}.json")
        store.put(key, data)
        return PayloadPointer(key=key, sha256=sha, size=len(data))

    def _get(self, pointer: PayloadPointer) -> Any:
        store = self.store
        if store is None:
            raise ConfigurationError(
                f"a payload pointer ({pointer.key}) arrived but this app has no payload_store; "
                "set payload_store (CLOUDQ_PAYLOAD_STORE) as the sender does"
            )
        data = store.get(pointer.key)
        if len(data) != pointer.size or digest(data) != pointer.sha256:
            raise SignatureError(
                f"payload object {pointer.key} does not match the hash its pointer carries "
                "(replaced or altered after it was written)"
            )
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise DecodeError(f"payload object {pointer.key} is not JSON: {exc}") from exc


def _from_stepfunctions(message: Message) -> bool:
    """An unsigned body carrying a task token: what a ``.waitForTaskToken`` state sends (only
    accepted on a queue of ``stepfunctions_queues``, ``Codec.decode``)."""
    return message.task_token is not None and message.signature is None
