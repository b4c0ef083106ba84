"""``redis://host:port/db``: results in Redis, one JSON string per task id.

Records expire with the key (``EXPIREAT`` from ``expires_at``), and reads also treat a passed
``expires_at`` as missing. The claim is one Lua script (``redis_claim.lua``) with the rule of
``backends.base.claim_decision``; the guarded store another (``redis_put_unless_superseded.lua``,
the rule of ``backends.base.superseded``); counters are ``INCRBY``; a chord's members a set
counted once (``redis_count_once.lua``); a revoke one script (``redis_revoke.lua``). The
flow-control primitives are one script each, with the rules of ``backends.flow``: a rate bucket
is a number (``redis_reserve_rate.lua``), a concurrency cap a hash of leases
(``redis_acquire_lease.lua``, released with ``HDEL``), a progress write ``redis_put_progress.lua``.
Run-time schedules are a hash, name → definition (rule ``backends.base.schedule_change``):
created with ``HSETNX``, deleted by ``redis_delete_schedule.lua``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from cloudq.backends.base import (
    Claim,
    ClaimStatus,
    Counted,
    Delivery,
    Progress,
    ResultRecord,
    claim_decision,
    claimed_record,
    revoked_record,
)
from cloudq.backends.flow import progress_running
from cloudq.core.clock import SYSTEM_CLOCK, Clock
from cloudq.core.errors import BackendError, MissingExtraError
from cloudq.core.redis_scripts import load_scripts

try:
    import redis
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingExtraError("redis", "redis") from exc


SCRIPTS = (
    "claim",
    "put_unless_superseded",
    "count_once",
    "revoke",
    "reserve_rate",
    "acquire_lease",
    "put_progress",
    "delete_schedule",
)


#: A task id stays in the progress index this long after its last report at most.
PROGRESS_INDEX_SECONDS = 86_400


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


@contextmanager
def mapped(what: str) -> Iterator[None]:
    """The one boundary where redis errors become ``BackendError``."""
    try:
        yield
    except redis.RedisError as exc:
        raise BackendError(f"Redis result backend failed ({what}): {exc}") from exc


class RedisBackend:
    """Result records under ``<prefix>result:<task id>``."""

    def __init__(self, client: Any, prefix: str = "", *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.client = client
        #: The time expiry and leases are compared with (``EXPIREAT`` uses the server's).
        self.clock = clock
        self.prefix = prefix
        self._scripts = load_scripts(client, "cloudq.backends", SCRIPTS, "redis_")

    @classmethod
    def from_url(cls, url: str, prefix: str = "", *, clock: Clock = SYSTEM_CLOCK) -> RedisBackend:
        client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        return cls(client, prefix, clock=clock)

    def _key(self, task_id: str) -> str:
        return f"{self.prefix}result:{task_id}"

    def _live(self, raw: bytes | None) -> ResultRecord | None:
        if raw is None:
            return None
        record = ResultRecord.model_validate_json(raw)
        expired = record.expires_at is not None and record.expires_at < self.clock.time()
        return None if expired else record

    def get(self, task_id: str) -> ResultRecord | None:
        with mapped("get"):
            raw = self.client.get(self._key(task_id))
        return self._live(raw)

    def get_many(self, task_ids: Sequence[str]) -> dict[str, ResultRecord]:
        unique = list(dict.fromkeys(task_ids))
        if not unique:
            return {}
        with mapped("get_many"):
            raws = self.client.mget([self._key(task_id) for task_id in unique])
        found = {task_id: self._live(raw) for task_id, raw in zip(unique, raws, strict=True)}
        return {task_id: record for task_id, record in found.items() if record is not None}

    def put(self, record: ResultRecord) -> None:
        with mapped("put"):
            pipe = self.client.pipeline()
            pipe.set(self._key(record.task_id), record.model_dump_json())
            if record.expires_at is not None:
                pipe.expireat(self._key(record.task_id), record.expires_at)
            pipe.execute()

    def put_unless_superseded(self, record: ResultRecord, attempt: int) -> ResultRecord | None:
        args = [record.model_dump_json(), attempt, repr(self.clock.time()), _expire_at(record)]
        with mapped("put_unless_superseded"):
            raw = self._scripts["put_unless_superseded"](keys=[self._key(record.task_id)], args=args)
        return None if raw is None else ResultRecord.model_validate_json(raw)

    def claim(
        self,
        task_id: str,
        task_name: str,
        owner: str,
        lease_seconds: float,
        now: float,
        expires_at: int | None = None,
        delivery: Delivery | None = None,
    ) -> Claim:
        # The record as claimed, with attempts=1; the script puts in the real count.
        template = claimed_record(None, task_id, task_name, owner, lease_seconds, now, expires_at, delivery)
        args = [
            owner,
            repr(now),
            template.model_dump_json(),
            delivery.message_id if delivery else "",
            delivery.receive_count if delivery else 0,
            "" if expires_at is None else expires_at,
        ]
        with mapped("claim"):
            status, raw = self._scripts["claim"](keys=[self._key(task_id)], args=args)
        record = ResultRecord.model_validate_json(raw)
        if status == b"CLAIMED":
            return Claim(status=ClaimStatus.CLAIMED, record=record)
        refused = claim_decision(record, owner, now, delivery)
        return refused or Claim(status=ClaimStatus.LEASED, lease_remaining=1.0, record=record)

    def increment(self, key: str, amount: int = 1) -> int:
        with mapped("increment"):
            return int(self.client.incrby(f"{self.prefix}counter:{key}", amount))

    def count_once(self, key: str, member: str, expires_at: int | None = None) -> Counted:
        args = [member, "" if expires_at is None else expires_at]
        with mapped("count_once"):
            added, count = self._scripts["count_once"](keys=[f"{self.prefix}set:{key}"], args=args)
        return Counted(bool(added), int(count))

    def revoke(self, task_id: str, now: float, expires_at: int | None = None) -> ResultRecord | None:
        template = revoked_record(None, task_id, now, expires_at)
        args = [template.model_dump_json(), repr(now), "" if expires_at is None else expires_at]
        with mapped("revoke"):
            raw = self._scripts["revoke"](keys=[self._key(task_id)], args=args)
        return None if raw is None else ResultRecord.model_validate_json(raw)

    def reserve_rate(self, key: str, interval: float, burst: int, now: float) -> float:
        args = [repr(now), repr(interval), burst]
        with mapped("reserve_rate"):
            wait = self._scripts["reserve_rate"](keys=[f"{self.prefix}rate:{key}"], args=args)
        return float(wait)

    def acquire_lease(self, key: str, holder: str, limit: int, lease_seconds: float, now: float) -> float:
        args = [holder, limit, repr(lease_seconds), repr(now)]
        with mapped("acquire_lease"):
            retry_after = self._scripts["acquire_lease"](keys=[f"{self.prefix}lease:{key}"], args=args)
        return float(retry_after)

    def release_lease(self, key: str, holder: str) -> None:
        with mapped("release_lease"):
            self.client.hdel(f"{self.prefix}lease:{key}", holder)

    def put_progress(self, task_id: str, owner: str, progress: Progress, now: float) -> bool:
        args = [owner, repr(now), progress.model_dump_json(), task_id, repr(now - PROGRESS_INDEX_SECONDS)]
        keys = [self._key(task_id), self._progress_index]
        with mapped("put_progress"):
            return bool(self._scripts["put_progress"](keys=keys, args=args))

    @property
    def _progress_index(self) -> str:
        """Task ids by their last progress report's time (a sorted set), so that running
        tasks are listed without a scan."""
        return f"{self.prefix}progress"

    def running_progress(self, now: float, limit: int) -> list[ResultRecord] | None:
        """The latest reports first; ids whose run ended leave the index as they are read."""
        with mapped("running_progress"):
            ids = [_text(raw) for raw in self.client.zrevrange(self._progress_index, 0, 4 * limit - 1)]
            raws = self.client.mget([self._key(task_id) for task_id in ids]) if ids else []
            running: list[ResultRecord] = []
            ended: list[str] = []
            for task_id, raw in zip(ids, raws, strict=True):
                record = self._live(raw)
                if record is not None and progress_running(record, now):
                    running.append(record)
                else:
                    ended.append(task_id)
            if ended:
                self.client.zrem(self._progress_index, *ended)
        return running[:limit]

    def put_schedule(self, key: str, name: str, definition: str) -> bool:
        # HSETNX is the rule's create case (schedule_change): set only where there is none.
        with mapped("put_schedule"):
            return bool(self.client.hsetnx(f"{self.prefix}schedules:{key}", name, definition))

    def delete_schedule(self, key: str, name: str, expected: str | None = None) -> bool:
        args = [name, "" if expected is None else expected]
        with mapped("delete_schedule"):
            return bool(self._scripts["delete_schedule"](keys=[f"{self.prefix}schedules:{key}"], args=args))

    def schedules(self, key: str) -> dict[str, str]:
        with mapped("schedules"):
            found = self.client.hgetall(f"{self.prefix}schedules:{key}")
        return {name.decode(): definition.decode() for name, definition in found.items()}

    def close(self) -> None:
        self.client.close()


def _expire_at(record: ResultRecord) -> int | str:
    """``EXPIREAT``'s argument for a script, or ``''`` for a record that never expires."""
    return "" if record.expires_at is None else record.expires_at
