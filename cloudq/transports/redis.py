"""``redis://host:port/db``: a broker on Redis with SQS's semantics, not a plain list.

Each queue (physical name ``<prefix><logical>``) is a few keys — entries, a sorted set of
visible-from times, receive counts, receipt tokens, a wake-up list, and for FIFO queues each
group's send order; ``redis_common.lua`` describes them. Every move is one Lua script
(``redis_*.lua`` beside this module) on the server's clock, so client clocks do not matter
and a worker that dies between two calls loses nothing: its messages reappear when their
visibility passes.

- Visibility: ``receive`` moves a message's score to now + timeout and bumps its receive
  count and receipt token in the same script. A handle is ``id:token``; one whose token is no
  longer current (acked, or received again since) is ignored by ack and visibility changes.
- Long poll: a receive that finds nothing blocks on ``BLPOP`` of the queue's wake-up list
  (pushed by senders and hand-backs) for at most the time until the next hidden message is
  due, capped at ``MAX_BLOCK_SECONDS``; no busy waiting.
- FIFO (``*.fifo``): a group hands out nothing while one of its received messages is hidden,
  and always hands out in send order, even after a hand-back or an expired visibility. A
  send whose deduplication id (``fifo_deduplication_id``) was sent in the last 5 minutes is
  answered with the first message's id and not added: the send script checks and sets the
  key ``<queue>:dedup:<id>`` (expiring after the window, on the server's clock) in the same step.

Redis needs no provisioning: ``check_queues`` only checks that the server answers.
Single-node Redis (or a primary): the scripts touch several keys of one or two queues.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any

from cloudq.core.errors import MissingExtraError, TransportError
from cloudq.core.naming import DEFAULT_VISIBILITY_TIMEOUT, physical_name
from cloudq.core.redis_scripts import load_scripts
from cloudq.transports.base import (
    SQS_LIMITS,
    OutgoingMessage,
    QueueStats,
    ReceivedMessage,
    SendResult,
    check_size,
    dead_letter_attributes,
    dead_letter_queue_name,
    fifo_deduplication_id,
    is_fifo,
    refused_body,
)

try:
    import redis
    from redis.commands.core import Script
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingExtraError("redis", "redis") from exc

#: Longest single blocking wait of a long poll: a safety net for missed wake-ups.
MAX_BLOCK_SECONDS = 1.0
#: The keys of one queue, in the order the scripts expect them (see redis_common.lua).
PARTS = ("seq", "msgs", "vis", "counts", "tokens", "notify", "group", "order", "due")
#: ``stats`` finds the oldest message by scanning the queue's ids (O(n) on the server): up to
#: this depth; deeper queues report no age.
OLDEST_SCAN_MAX_MESSAGES = 100_000
SCRIPTS = ("send", "receive", "settle", "dead_letter", "stats", "import")
#: A Celery queue's long poll looks at kombu's lists this often (a Celery producer pushes no
#: wake-up): a Celery message waits this long at most before a waiting receive takes it.
CELERY_POLL_SECONDS = 0.2
#: Kombu's Redis priority lists of a queue: ``<queue>`` for priority 0, ``<queue>\x06\x16<n>``
#: for the others of its steps (0, 3, 6, 9), highest priority (lowest number) first.
KOMBU_PRIORITY_SEPARATOR = "\x06\x16"
KOMBU_PRIORITY_STEPS = (3, 6, 9)


@contextmanager
def mapped(what: str) -> Iterator[None]:
    """The one boundary where redis errors become ``TransportError``."""
    try:
        yield
    except redis.RedisError as exc:
        raise TransportError(f"Redis broker failed ({what}): {exc}") from exc


def _load_scripts(client: redis.Redis) -> dict[str, Script]:
    common = (resources.files("cloudq.transports") / "redis_common.lua").read_text()
    return load_scripts(client, "cloudq.transports", SCRIPTS, "redis_", common)


def _flag(queue: str) -> str:
    return "1" if is_fifo(queue) else "0"


def kombu_lists(physical: str) -> list[str]:
    """The lists kombu keeps queue ``physical`` in (its Redis transport), highest priority first."""
    return [physical] + [f"{physical}{KOMBU_PRIORITY_SEPARATOR}{step}" for step in KOMBU_PRIORITY_STEPS]


class RedisTransport:
    """Queues in one Redis database, named ``<prefix><logical name>``.

    A Celery queue (``celery_queues``) keeps its own name, and is bridged: Celery's producers
    push kombu's message JSON on kombu's lists (``kombu_lists``), and each receive first
    moves what is there into the queue's own keys (``redis_import.lua``, atomic), so visibility,
    receive counts and dead letters work as on any queue. A send without delay pushes on
    kombu's list, where a Celery worker finds it too; a delayed one (a hop: Celery's own
    producers send no delay, the eta travels in the message) stays in the queue's keys."""

    max_delay_seconds = SQS_LIMITS.max_delay_seconds
    max_visibility_seconds = SQS_LIMITS.max_visibility_seconds
    batch_size = SQS_LIMITS.batch_size
    visibility_timeouts = True
    #: An ack is a round trip: batched.
    immediate_acks = False
    #: FIFO queues deduplicate for SQS's 5 minutes (redis_send.lua).
    deduplication = True

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "",
        *,
        visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT,
        max_message_bytes: int = SQS_LIMITS.max_message_bytes,
        celery_queues: Collection[str] = (),
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.celery_queues = frozenset(celery_queues)
        self.visibility_timeout = visibility_timeout
        self.max_message_bytes = max_message_bytes
        self._scripts = _load_scripts(client)
        self._key_cache: dict[str, list[str]] = {}

    def describe(self) -> str:
        kwargs = self.client.connection_pool.connection_kwargs
        where = kwargs.get("path") or f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
        return f"redis at {where} db {kwargs.get('db', 0)}"

    @classmethod
    def from_url(cls, url: str, prefix: str = "", **options: Any) -> RedisTransport:
        # The socket timeout is above the longest blocking wait, so BLPOP is never cut short.
        client = redis.Redis.from_url(url, socket_timeout=MAX_BLOCK_SECONDS + 10, socket_connect_timeout=5)
        return cls(client, prefix, **options)

    def _physical(self, queue: str) -> str:
        return physical_name(self.prefix, queue, self.celery_queues)

    def _keys(self, queue: str) -> list[str]:
        keys = self._key_cache.get(queue)
        if keys is None:
            keys = self._key_cache[queue] = [f"{self._physical(queue)}:{part}" for part in PARTS]
        return keys

    def _run(self, script: str, what: str, keys: list[str], args: list[Any]) -> Any:
        with mapped(what):
            return self._scripts[script](keys=keys, args=args)

    def check_queues(self, queues: Sequence[str]) -> None:
        """Redis queues need no provisioning: this only checks that the server answers."""
        with mapped("ping"):
            self.client.ping()

    def _bridged(self, queue: str) -> bool:
        """Whether ``queue`` is a Celery queue read from kombu's lists (not its DLQ)."""
        return queue in self.celery_queues

    def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        for message in messages:
            check_size(message.body, self.max_message_bytes)
        results = [SendResult(error=refused_body(message.body)) for message in messages]
        if self._bridged(queue) and not any(message.delay_seconds for message in messages):
            return self._push_to_kombu(queue, messages, results)
        to_send = [i for i, result in enumerate(results) if result.error is None]
        keys = list(self._keys(queue))
        args: list[Any] = [_flag(queue), SQS_LIMITS.deduplication_seconds * 1000]
        for i in to_send:  # one script call: every message is added, or none
            message = messages[i]
            entry = {"b": message.body, "a": dict(message.attributes), "g": message.group_id}
            delay_ms = min(max(message.delay_seconds, 0), SQS_LIMITS.max_delay_seconds) * 1000
            args += [json.dumps(entry), message.group_id or "", delay_ms]
            if is_fifo(queue):
                keys.append(f"{self._physical(queue)}:dedup:{fifo_deduplication_id(message)}")
        if to_send:
            ids = self._run("send", f"send to {queue}", keys, args)
            for i, raw in zip(to_send, ids, strict=True):
                results[i] = SendResult(self._message_id(queue, _text(raw)))
        return results

    def _push_to_kombu(
        self, queue: str, messages: Sequence[OutgoingMessage], results: list[SendResult]
    ) -> list[SendResult]:
        """Push on kombu's priority-0 list, as a Celery producer does (LPUSH; one pipeline)."""
        to_send = [i for i, result in enumerate(results) if result.error is None]
        [kombu_list, *_] = kombu_lists(self._physical(queue))
        with mapped(f"send to {queue}"):
            with self.client.pipeline(transaction=True) as pipe:
                for i in to_send:
                    pipe.lpush(kombu_list, messages[i].body)
                pipe.execute()
        for i in to_send:
            tag = json.loads(messages[i].body).get("properties", {}).get("delivery_tag")
            results[i] = SendResult(f"{kombu_list}/{tag or i}")
        return results

    def _message_id(self, queue: str, local_id: str) -> str:
        return f"{self._physical(queue)}/{local_id}"

    def receive(
        self,
        queue: str,
        max_messages: int = 10,
        wait_seconds: float = 20.0,
        visibility_timeout: int | None = None,
    ) -> list[ReceivedMessage]:
        hide = self.visibility_timeout if visibility_timeout is None else visibility_timeout
        limit = max(1, min(max_messages, SQS_LIMITS.batch_size))
        args = [limit, int(hide * 1000), _flag(queue)]
        keys = self._keys(queue)
        deadline = time.monotonic() + wait_seconds
        while True:
            if self._bridged(queue):
                self._import(queue, limit)
            found = self._run("receive", f"receive from {queue}", keys, args)
            if not isinstance(found, int):
                return [self._received(queue, row) for row in json.loads(found)]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            wait = min(remaining, found / 1000 if found >= 0 else remaining)
            self._wait(queue, min(wait, CELERY_POLL_SECONDS) if self._bridged(queue) else wait)

    def _import(self, queue: str, limit: int) -> None:
        keys = self._keys(queue) + kombu_lists(self._physical(queue))
        self._run("import", f"import from kombu's lists of {queue}", keys, [limit])

    def _wait(self, queue: str, seconds: float) -> None:
        """Block until a sender pushes a wake-up, or for ``seconds`` (capped)."""
        notify = self._keys(queue)[PARTS.index("notify")]
        with mapped(f"wait on {queue}"):
            self.client.blpop([notify], timeout=max(min(seconds, MAX_BLOCK_SECONDS), 0.001))

    def _received(self, queue: str, row: Sequence[Any]) -> ReceivedMessage:
        local_id, count, token, entry = row
        return ReceivedMessage(
            queue=queue,
            message_id=self._message_id(queue, local_id),
            receipt_handle=f"{local_id}:{token}",
            body=entry["b"],
            receive_count=count,
            sent_timestamp_ms=entry["t"],
            attributes=entry.get("a") or {},  # none on a message imported from kombu
            group_id=entry["g"],
        )

    def _settle(self, queue: str, action: str, receipt_handles: Sequence[str]) -> None:
        if receipt_handles:
            args = [_flag(queue), action, *receipt_handles]
            self._run("settle", f"settle on {queue}", self._keys(queue), args)

    def ack(self, queue: str, receipt_handles: Sequence[str]) -> None:
        self._settle(queue, "delete", receipt_handles)

    def change_visibility(self, queue: str, receipt_handle: str, visibility_timeout: int) -> None:
        self._settle(queue, str(int(visibility_timeout * 1000)), [receipt_handle])

    def extend_visibility(self, queue: str, receipt_handles: Sequence[str], visibility_timeout: int) -> None:
        self._settle(queue, str(int(visibility_timeout * 1000)), receipt_handles)

    def dead_letter(self, message: ReceivedMessage, reason: str) -> str:
        entry = {"b": message.body, "a": dead_letter_attributes(message, reason), "g": message.group_id}
        dlq = dead_letter_queue_name(message.queue)
        keys = self._keys(message.queue) + self._keys(dlq)
        args = [message.receipt_handle, json.dumps(entry), _flag(message.queue), _flag(dlq)]
        copy = _text(
            self._run("dead_letter", f"dead-letter on {message.queue}", keys, [*args, message.group_id or ""])
        )
        return self._message_id(dlq, copy) if copy else ""

    def stats(self, queue: str) -> QueueStats:
        args = [OLDEST_SCAN_MAX_MESSAGES]
        visible, in_flight, delayed, age_ms = self._run("stats", f"stats of {queue}", self._keys(queue), args)
        if self._bridged(queue):  # not imported yet, but there
            with mapped(f"stats of {queue}"):
                names = kombu_lists(self._physical(queue))
                visible = int(visible) + sum(self.client.llen(name) for name in names)
        oldest = int(age_ms) / 1000 if int(age_ms) >= 0 else None
        return QueueStats(int(visible), int(in_flight), int(delayed), oldest)

    def close(self) -> None:
        self.client.close()


def _text(raw: bytes | str) -> str:
    """Works with clients made with or without ``decode_responses``."""
    return raw.decode() if isinstance(raw, bytes) else raw
