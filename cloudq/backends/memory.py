"""``memory://``: an in-process result store with the same semantics as the others (claim,
lease, TTL, counters)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from cloudq.backends.base import (
    Claim,
    ClaimStatus,
    Counted,
    Delivery,
    Progress,
    ResultRecord,
    State,
    claim_decision,
    claimed_record,
    revoked_record,
    schedule_change,
    superseded,
)
from cloudq.backends.flow import lease_decision, progress_allowed, progress_running, rate_decision
from cloudq.core.clock import SYSTEM_CLOCK, Clock


class MemoryBackend:
    """Thread-safe dict of records. Expired records (``expires_at`` passed on ``clock``) read
    as missing."""

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self._records: dict[str, ResultRecord] = {}
        self._counters: dict[str, int] = {}
        self._sets: dict[str, set[str]] = {}
        self._buckets: dict[str, float] = {}
        self._leases: dict[str, dict[str, float]] = {}
        self._schedules: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def _live(self, task_id: str) -> ResultRecord | None:
        record = self._records.get(task_id)
        if record is not None and record.expires_at is not None and record.expires_at < self.clock.time():
            del self._records[task_id]
            return None
        return record

    def get(self, task_id: str) -> ResultRecord | None:
        with self._lock:
            return self._live(task_id)

    def get_many(self, task_ids: Sequence[str]) -> dict[str, ResultRecord]:
        with self._lock:
            found = {task_id: self._live(task_id) for task_id in task_ids}
        return {task_id: record for task_id, record in found.items() if record is not None}

    def put(self, record: ResultRecord) -> None:
        with self._lock:
            self._records[record.task_id] = record.model_copy()

    def put_unless_superseded(self, record: ResultRecord, attempt: int) -> ResultRecord | None:
        with self._lock:
            found = self._live(record.task_id)
            if found is not None and superseded(found, attempt, self.clock.time()):
                return found
            self._records[record.task_id] = record.model_copy()
            return None

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
        with self._lock:
            found = self._live(task_id)
            refused = claim_decision(found, owner, now, delivery)
            if refused is not None:
                return refused
            record = claimed_record(
                found, task_id, task_name, owner, lease_seconds, now, expires_at, delivery
            )
            self._records[task_id] = record
            return Claim(status=ClaimStatus.CLAIMED, record=record)

    def increment(self, key: str, amount: int = 1) -> int:
        with self._lock:
            value = self._counters.get(key, 0) + amount
            self._counters[key] = value
            return value

    def count_once(self, key: str, member: str, expires_at: int | None = None) -> Counted:
        with self._lock:
            members = self._sets.setdefault(key, set())
            added = member not in members
            members.add(member)
            return Counted(added, len(members))

    def revoke(self, task_id: str, now: float, expires_at: int | None = None) -> ResultRecord | None:
        with self._lock:
            found = self._live(task_id)
            if found is not None and found.state.ready:
                return found
            self._records[task_id] = revoked_record(found, task_id, now, expires_at)
            return None

    def reserve_rate(self, key: str, interval: float, burst: int, now: float) -> float:
        with self._lock:
            decision = rate_decision(self._buckets.get(key), now, interval, burst)
            self._buckets[key] = decision.tat
            return decision.wait

    def acquire_lease(self, key: str, holder: str, limit: int, lease_seconds: float, now: float) -> float:
        with self._lock:
            decision = lease_decision(self._leases.get(key, {}), holder, limit, lease_seconds, now)
            if decision.holders is not None:
                self._leases[key] = decision.holders
            return decision.retry_after

    def release_lease(self, key: str, holder: str) -> None:
        with self._lock:
            self._leases.get(key, {}).pop(holder, None)

    def put_progress(self, task_id: str, owner: str, progress: Progress, now: float) -> bool:
        with self._lock:
            found = self._live(task_id)
            if found is None or not progress_allowed(found, owner, now):
                return False
            update = {"state": State.PROGRESS, "progress": progress.model_copy()}
            self._records[task_id] = found.model_copy(update=update)
            return True

    def put_schedule(self, key: str, name: str, definition: str) -> bool:
        with self._lock:
            entries = self._schedules.setdefault(key, {})
            if not schedule_change(entries.get(name), definition):
                return False
            entries[name] = definition
            return True

    def delete_schedule(self, key: str, name: str, expected: str | None = None) -> bool:
        with self._lock:
            entries = self._schedules.get(key, {})
            if not schedule_change(entries.get(name), None, expected):
                return False
            del entries[name]
            return True

    def schedules(self, key: str) -> dict[str, str]:
        with self._lock:
            return dict(self._schedules.get(key, {}))

    def running_progress(self, now: float, limit: int) -> list[ResultRecord] | None:
        with self._lock:
            records = [self._live(task_id) for task_id in list(self._records)]
        return [record for record in records if record is not None and progress_running(record, now)][:limit]

    def close(self) -> None:
        """Nothing to release."""
