"""``redis://host:port/db``: a broker on Redis with SQS's semantics, not a plain list.

Per queue ``q`` (physical name, ``<prefix><logical>``):

- ``q:msgs``   hash id → entry JSON (body, attributes, group, sent-at ms)
- ``q:vis``    sorted set id → the time (ms, Redis clock) it is visible from. Ready messages
  have a past score; delayed and in-flight ones a future score. Ids are zero-padded sequence
  numbers, so equal scores sort in send order.
- ``q:counts`` hash id → receive count (present once received: in flight vs delayed)
- ``q:tokens`` hash id → the current receipt token; a receipt handle is ``id:token``, so a
  stale handle (the message was received again since) is ignored.
- ``q:notify`` a short list senders push to, so long polls wake without busy waiting.

Every move is one Lua script (``redis_*.lua`` beside this module) using the server's clock:
a worker that dies between two calls loses nothing; its messages reappear when their
visibility passes. Redis needs no provisioning, so ``check_queues`` only checks the server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any

from cloudq.errors import MissingExtraError, TransportError
from cloudq.transports.base import (
    REASON_ATTRIBUTE,
    SOURCE_QUEUE_ATTRIBUTE,
    OutgoingMessage,
    QueueStats,
    ReceivedMessage,
    check_size,
    dead_letter_queue_name,
    is_fifo,
)

try:
    import redis
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingExtraError("redis", "redis") from exc

MAX_DELAY_SECONDS = 900
MAX_MESSAGE_BYTES = 1024 * 1024
#: Longest single blocking wait of a long poll: catches visibility expiries and lost wake-ups.
MAX_BLOCK_SECONDS = 1.0
SCRIPTS = ("send", "receive", "settle", "dead_letter", "stats", "next")


@contextmanager
def mapped(what: str) -> Iterator[None]:
    """The one boundary where redis errors become ``TransportError``."""
    try:
        yield
    except redis.RedisError as exc:
        raise TransportError(f"Redis broker failed ({what}): {exc}") from exc


def load_scripts(client: Any, package: str, names: Sequence[str], stem: str) -> dict[str, Any]:
    folder = resources.files(package)
    return {name: client.register_script((folder / f"{stem}{name}.lua").read_text()) for name in names}


class RedisTransport:
    """Queues in one Redis database, named ``<prefix><logical name>``."""

    max_delay_seconds = MAX_DELAY_SECONDS

    def __init__(
        self,
        client: Any,
        prefix: str = "",
        *,
        visibility_timeout: int = 30,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.visibility_timeout = visibility_timeout
        self.max_message_bytes = max_message_bytes
        self._scripts = load_scripts(client, "cloudq.transports", SCRIPTS, "redis_")

    @classmethod
    def from_url(cls, url: str, prefix: str = "", **options: Any) -> RedisTransport:
        # Socket timeout above the longest blocking wait, so BLPOP is never cut short.
        client = redis.Redis.from_url(url, socket_timeout=MAX_BLOCK_SECONDS + 10, socket_connect_timeout=5)
        return cls(client, prefix, **options)

    def _keys(self, queue: str, *parts: str) -> list[str]:
        name = self.prefix + queue
        return [f"{name}:{part}" for part in parts]

    def check_queues(self, queues: Sequence[str]) -> None:
        with mapped("ping"):
            self.client.ping()

    def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> list[str]:
        args: list[Any] = []
        for message in messages:
            check_size(message.body, self.max_message_bytes)
            entry = {
                "b": message.body,
                "a": dict(message.attributes),
                "g": message.group_id,
                "t": time.time(),
            }
            delay_ms = min(max(message.delay_seconds, 0), MAX_DELAY_SECONDS) * 1000
            args += [json.dumps(entry), delay_ms]
        if not args:
            return []
        keys = self._keys(queue, "seq", "msgs", "vis", "notify")
        with mapped(f"send to {queue}"):
            ids = self._scripts["send"](keys=keys, args=args)
        return [self._message_id(queue, raw.decode()) for raw in ids]

    def _message_id(self, queue: str, local_id: str) -> str:
        return f"{self.prefix}{queue}/{local_id}"

    def receive(
        self,
        queue: str,
        max_messages: int = 10,
        wait_seconds: float = 20.0,
        visibility_timeout: int | None = None,
    ) -> list[ReceivedMessage]:
        hide_ms = int((self.visibility_timeout if visibility_timeout is None else visibility_timeout) * 1000)
        limit = max(1, min(max_messages, 10))
        keys = self._keys(queue, "vis", "msgs", "counts", "tokens")
        deadline = time.monotonic() + wait_seconds
        while True:
            with mapped(f"receive from {queue}"):
                flat = self._scripts["receive"](keys=keys, args=[limit, hide_ms, int(is_fifo(queue))])
            remaining = deadline - time.monotonic()
            if flat or remaining <= 0:
                return [self._received(queue, flat[i : i + 4]) for i in range(0, len(flat), 4)]
            self._wait(queue, remaining)

    def _wait(self, queue: str, remaining: float) -> None:
        """Block until a sender pushes a wake-up, a hidden message is due, or time is up."""
        [vis, notify] = self._keys(queue, "vis", "notify")
        with mapped(f"wait on {queue}"):
            due_ms = self._scripts["next"](keys=[vis])
            block = min(remaining, MAX_BLOCK_SECONDS)
            if due_ms >= 0:
                block = min(block, max(due_ms / 1000, 0.001))
            self.client.blpop([notify], timeout=max(block, 0.001))

    def _received(self, queue: str, row: Sequence[Any]) -> ReceivedMessage:
        local_id, raw, count, token = row[0].decode(), row[1], int(row[2]), int(row[3])
        entry = json.loads(raw)
        return ReceivedMessage(
            queue=queue,
            message_id=self._message_id(queue, local_id),
            receipt_handle=f"{local_id}:{token}",
            body=entry["b"],
            receive_count=count,
            sent_timestamp_ms=int(entry["t"] * 1000),
            attributes=entry["a"] or {},
            group_id=entry["g"],
        )

    def _settle(self, queue: str, action: str, receipt_handles: Sequence[str]) -> None:
        if not receipt_handles:
            return
        keys = self._keys(queue, "vis", "msgs", "counts", "tokens", "notify")
        with mapped(f"settle on {queue}"):
            self._scripts["settle"](keys=keys, args=[action, *receipt_handles])

    def ack(self, queue: str, receipt_handles: Sequence[str]) -> None:
        self._settle(queue, "delete", receipt_handles)

    def change_visibility(self, queue: str, receipt_handle: str, visibility_timeout: int) -> None:
        self._settle(queue, str(int(visibility_timeout * 1000)), [receipt_handle])

    def extend_visibility(self, queue: str, receipt_handles: Sequence[str], visibility_timeout: int) -> None:
        self._settle(queue, str(int(visibility_timeout * 1000)), receipt_handles)

    def dead_letter(self, message: ReceivedMessage, reason: str) -> None:
        attributes = {**message.attributes, REASON_ATTRIBUTE: reason, SOURCE_QUEUE_ATTRIBUTE: message.queue}
        entry = {"b": message.body, "a": attributes, "g": message.group_id, "t": time.time()}
        dlq = dead_letter_queue_name(message.queue)
        keys = self._keys(message.queue, "vis", "msgs", "counts", "tokens") + self._keys(
            dlq, "seq", "msgs", "vis", "notify"
        )
        with mapped(f"dead-letter on {message.queue}"):
            self._scripts["dead_letter"](keys=keys, args=[message.receipt_handle, json.dumps(entry)])

    def stats(self, queue: str) -> QueueStats:
        with mapped(f"stats of {queue}"):
            visible, in_flight, delayed = self._scripts["stats"](keys=self._keys(queue, "vis", "counts"))
        return QueueStats(int(visible), int(in_flight), int(delayed))

    def close(self) -> None:
        self.client.close()
