"""The flow-control rules, each written once: rate slots, concurrency leases, progress writes.

The ``ResultBackend`` protocol (``cloudq.backends.base``) offers three primitives built on
these rules; the memory engine calls them under its lock, DynamoDB encodes them in its
conditions and Redis in its Lua scripts (each points back here):

- ``reserve_rate``: a rate limit as GCRA (the generic cell rate algorithm, a token bucket kept
  as one number). The bucket's state is its *theoretical arrival time* ``tat``: the time at
  which it is full again. A call at ``now`` takes the next free slot, ``max(tat, now)``, and
  moves ``tat`` one ``interval`` on; it may run now if that slot is no further ahead than the
  burst allows (``(burst - 1) * interval``), else it waits until it is. Every call reserves
  its slot, so a refused caller learns exactly when to come back, and callers that come back
  then never meet again: a backlog drains at the rate with one re-send per message.
- ``acquire_lease``: a concurrency cap as a set of leases, holder → expiry. A holder gets a
  lease while fewer than ``limit`` live leases are held (or it holds one already, which is
  renewed); expired leases are dropped, so a crashed holder's slot frees when its lease ends.
- ``progress_allowed``: a progress write keeps the task's claim: it lands only on a record
  that the writer still holds (STARTED or PROGRESS, its lease).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from cloudq.backends.base import ResultRecord


class RateDecision(NamedTuple):
    """What ``rate_decision`` found: the bucket's next ``tat`` and how long the caller waits
    for the slot it reserved (0: run now)."""

    tat: float
    wait: float


def rate_decision(tat: float | None, now: float, interval: float, burst: int) -> RateDecision:
    """The rate rule: reserve the next slot of a bucket of ``burst`` tokens that refills one
    token every ``interval`` seconds. ``tat`` is the stored state (``None``: a new bucket)."""
    start = now if tat is None or tat < now else tat
    tolerance = (burst - 1) * interval
    return RateDecision(start + interval, max(0.0, start - now - tolerance))


class LeaseDecision(NamedTuple):
    """What ``lease_decision`` found: the leases to store (``None``: refused, nothing
    changes), and for a refusal the seconds until the first live lease ends."""

    holders: dict[str, float] | None
    retry_after: float


def lease_decision(
    holders: dict[str, float], holder: str, limit: int, lease_seconds: float, now: float
) -> LeaseDecision:
    """The lease rule: ``holder`` gets (or renews) a lease until ``now + lease_seconds``
    unless ``limit`` other live leases are held. Expired leases are dropped."""
    live = {name: expires for name, expires in holders.items() if expires > now}
    if holder not in live and len(live) >= limit:
        return LeaseDecision(None, min(live.values()) - now)
    live[holder] = now + lease_seconds
    return LeaseDecision(live, 0.0)


def progress_running(record: ResultRecord, now: float) -> bool:
    """Whether ``record`` is of a run that reported progress and still holds its claim: what
    ``ResultBackend.running_progress`` lists."""
    from cloudq.backends.base import State

    return record.state is State.PROGRESS and (record.lease_expires_at or 0.0) > now


def progress_allowed(found: ResultRecord | None, owner: str, now: float) -> bool:
    """The progress rule: a progress write lands only while ``owner`` holds the task's claim
    (state STARTED or PROGRESS, its lease not expired), and keeps it."""
    from cloudq.backends.base import State

    if found is None or found.state not in (State.STARTED, State.PROGRESS):
        return False
    return found.lease_owner == owner and (found.lease_expires_at or 0.0) > now
