"""The ``ResultBackend`` protocol and the result record.

Engines store; the layer above decides. An engine makes a few primitives atomic (the
conditional claim, the counter); state transitions, polling and backoff live in
``cloudq/runtime/executor.py`` and ``cloudq/result.py``, written once for every engine.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from cloudq.core.pointer import PayloadPointer

#: The models of this module are built on first use, not at ``import cloudq`` (issue 14:
#: a Lambda cold start or a producer without results never needs them).
LAZY = ConfigDict(defer_build=True)


class State(str, enum.Enum):
    """Task states. ``PENDING`` means "no record": an unknown id, or not started yet."""

    PENDING = "PENDING"
    STARTED = "STARTED"
    #: Running, with a progress report (``set_progress``); the claim is kept.
    PROGRESS = "PROGRESS"
    RETRY = "RETRY"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    #: Revoked before it ran (``AsyncResult.revoke()``): the claim rule refuses to run it.
    REVOKED = "REVOKED"

    def __str__(self) -> str:
        # ``print(result.state)`` shows SUCCESS, not State.SUCCESS.
        return self.value

    @property
    def ready(self) -> bool:
        return self in (State.SUCCESS, State.FAILURE, State.REVOKED)


class Progress(BaseModel):
    """How far a running task is (``set_progress``): ``done`` of ``total``, and a note."""

    model_config = LAZY

    done: float
    total: float | None = None
    message: str | None = None


class ResultRecord(BaseModel):
    """What is known about one task id. A data object: it holds no client and does no I/O."""

    model_config = LAZY

    task_id: str
    task_name: str = ""
    state: State = State.PENDING
    #: The JSON value of a successful task.
    value: Any = None
    #: Where the value is instead, when it was too large for the backend (payload store).
    value_pointer: PayloadPointer | None = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    attempts: int = 0
    date_started: float | None = None
    date_done: float | None = None
    #: Epoch seconds after which the engine may drop the record (DynamoDB TTL attribute).
    expires_at: int | None = None
    #: The worker holding the claim, and until when (epoch seconds).
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    #: The broker delivery the lease was taken for (message id, receive count).
    lease_message_id: str | None = None
    lease_receive_count: int | None = None
    #: The final errors of the task id's earlier lives (replayed from the dead-letter queue),
    #: one line each, oldest first.
    history: list[str] | None = None
    #: The last progress report of a running task (state PROGRESS). The last field: the
    #: Redis progress script splices it at the end of the stored JSON.
    progress: Progress | None = None


class Delivery(BaseModel):
    """Which broker delivery a claim is made for."""

    model_config = LAZY

    message_id: str
    receive_count: int


class ClaimStatus(str, enum.Enum):
    """What a claim found."""

    CLAIMED = "CLAIMED"  # this worker may run the task now
    ALREADY_SUCCEEDED = "ALREADY_SUCCEEDED"  # acknowledge without running
    LEASED = "LEASED"  # another worker holds a live lease; try later
    REVOKED = "REVOKED"  # revoked before it ran: acknowledge without running


class Counted(NamedTuple):
    """What ``count_once`` found: whether the member was new, and the set's size after it."""

    added: bool
    size: int


class Claim(BaseModel):
    model_config = LAZY

    status: ClaimStatus
    #: For LEASED: seconds until the other worker's lease expires.
    lease_remaining: float = 0.0
    #: The record as stored after the claim (CLAIMED) or as found (otherwise).
    record: ResultRecord | None = None


@runtime_checkable
class ResultBackend(Protocol):
    """A result store. Every method is safe to call from several threads at once."""

    def get(self, task_id: str) -> ResultRecord | None:
        """The record for ``task_id``, or ``None`` if there is none (PENDING)."""
        ...

    def get_many(self, task_ids: Sequence[str]) -> dict[str, ResultRecord]:
        """Records for the ids that have one (batched by the engine)."""
        ...

    def put(self, record: ResultRecord) -> None:
        """Store ``record`` whole, replacing any previous record of the same id."""
        ...

    def put_unless_superseded(self, record: ResultRecord, attempt: int) -> ResultRecord | None:
        """Store ``record`` whole, as ``put`` does, unless a later attempt has taken the task
        over: see ``superseded`` for the rule. Returns ``None`` when stored, or the stored
        record of the later attempt (left unchanged).

        ``attempt`` is the attempt the writer's delivery claimed. This is one conditional
        write: a stale run's outcome never lands over the record of an attempt that claimed
        the task after it, however the two race. An expired record counts as missing.
        """
        ...

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
        """Atomically take the right to run ``task_id``.

        Succeeds (``CLAIMED``, state becomes STARTED, ``attempts`` + 1, lease set to
        ``now + lease_seconds`` for ``owner``) unless the stored state is SUCCESS
        (``ALREADY_SUCCEEDED``) or another owner's lease is still live at ``now``
        (``LEASED``). This is one conditional write: two claimers never both win.
        ``expires_at`` is the record's TTL (epoch seconds).

        ``delivery`` names the broker message being run. A lease taken for the same message
        at a lower receive count does not block: the broker redelivered the message, so its
        holder lost it (died, or could not extend its visibility).
        """
        ...

    def increment(self, key: str, amount: int = 1) -> int:
        """Atomically add ``amount`` to the counter ``key`` and return the new value."""
        ...

    def count_once(self, key: str, member: str, expires_at: int | None = None) -> Counted:
        """Atomically add ``member`` to the set ``key`` and return whether it was not there
        yet, and how many members the set has now. One conditional write: a member added
        twice (a redelivered chord member) is counted once, however the two race."""
        ...

    def revoke(self, task_id: str, now: float, expires_at: int | None = None) -> ResultRecord | None:
        """Atomically set ``task_id``'s state to REVOKED unless it has finished (SUCCESS,
        FAILURE or REVOKED): ``None`` when revoked, else the finished record (unchanged).
        A record is created for an id without one (a task not started yet); ``attempts``
        is kept. One conditional write."""
        ...

    # -- flow control: each rule is written once, in ``cloudq.backends.flow`` ---------------

    def reserve_rate(self, key: str, interval: float, burst: int, now: float) -> float:
        """Reserve the next slot of the rate bucket ``key`` (``burst`` tokens, one more every
        ``interval`` seconds; the rule is ``flow.rate_decision``): ``0.0`` when the caller
        may run now, else the seconds until its reserved slot. One atomic write: every call
        reserves a slot of its own, however many race. An idle bucket's state expires."""
        ...

    def acquire_lease(self, key: str, holder: str, limit: int, lease_seconds: float, now: float) -> float:
        """Take or renew ``holder``'s lease on ``key`` until ``now + lease_seconds`` while
        fewer than ``limit`` live leases of others are held (the rule is
        ``flow.lease_decision``): ``0.0`` when held, else the seconds until the first live
        lease ends (nothing changes). One atomic write: ``limit`` is never exceeded."""
        ...

    def release_lease(self, key: str, holder: str) -> None:
        """Drop ``holder``'s lease on ``key`` (nothing happens if it has none)."""
        ...

    def put_progress(self, task_id: str, owner: str, progress: Progress, now: float) -> bool:
        """Store ``progress`` on the record of ``task_id`` (state PROGRESS) while ``owner``
        holds its claim, which is kept (the rule is ``flow.progress_allowed``); ``False``
        when it does not hold it (nothing changes). One conditional write."""
        ...

    # -- schedules made at run time: the rule is ``schedule_change``, written once ------------

    def put_schedule(self, key: str, name: str, definition: str) -> bool:
        """Add the schedule ``name`` (its JSON ``definition``) to the collection ``key``
        unless one of that name is there: ``False`` then (nothing changes). One conditional
        write: two creators of one name never both win. Entries never expire."""
        ...

    def delete_schedule(self, key: str, name: str, expected: str | None = None) -> bool:
        """Remove the schedule ``name`` from ``key`` (when ``expected`` is given: only while
        its definition is that one): ``True`` when removed. One conditional write."""
        ...

    def schedules(self, key: str) -> dict[str, str]:
        """Every schedule of ``key``, name → definition, as stored now (what ``cloudq beat``
        reads each tick: a write that returned is in it)."""
        ...

    def running_progress(self, now: float, limit: int) -> list[ResultRecord] | None:
        """Records of running tasks that reported progress (state PROGRESS, claim live at
        ``now``), at most ``limit``, the latest reports first where the engine knows; ``None``
        where it cannot list them without reading every record (DynamoDB: a scan)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def ttl_from(now_seconds: float, ttl_seconds: int | None) -> int | None:
    """Epoch-seconds expiry for a TTL, or None for records that never expire."""
    return None if ttl_seconds is None else int(now_seconds + ttl_seconds)


def claim_decision(
    found: ResultRecord | None, owner: str, now: float, delivery: Delivery | None = None
) -> Claim | None:
    """The claim rule, written once: ``None`` means the claim may be taken.

    Engines without a native conditional write (memory) call this under their lock; engines
    with one (DynamoDB, Redis) encode the same rule in their condition and use this to
    explain a refusal.
    """
    if found is None:
        return None
    if found.state is State.SUCCESS:
        return Claim(status=ClaimStatus.ALREADY_SUCCEEDED, record=found)
    if found.state is State.REVOKED:
        return Claim(status=ClaimStatus.REVOKED, record=found)
    if found.expires_at is not None and found.expires_at < now:
        return None
    lease_is_live = found.lease_expires_at is not None and found.lease_expires_at > now
    held_by_other = found.lease_owner is not None and found.lease_owner != owner
    redelivered = (
        delivery is not None
        and found.lease_message_id == delivery.message_id
        and (found.lease_receive_count or 0) < delivery.receive_count
    )
    if lease_is_live and held_by_other and not redelivered:
        remaining = (found.lease_expires_at or now) - now
        return Claim(status=ClaimStatus.LEASED, lease_remaining=remaining, record=found)
    return None


def schedule_change(found: str | None, definition: str | None, expected: str | None = None) -> bool:
    """The schedules rule, written once: whether a write lands on the entry ``found``
    (``None``: no entry of that name). A create (``definition`` given) lands only where there
    is no entry; a delete (``definition`` ``None``) only on an entry and, when ``expected`` is
    given, only on that same definition: a beat deleting the ``at()`` schedule it fired must
    not delete one created under the same name since.

    Engines without a native conditional write (memory) call this under their lock; engines
    with one (DynamoDB, Redis) encode the same rule in their condition.
    """
    if definition is not None:
        return found is None
    return found is not None and (expected is None or found == expected)


def superseded(found: ResultRecord | None, attempt: int, now: float) -> bool:
    """The stale-outcome rule, written once: ``True`` means the outcome of ``attempt`` must
    not be stored over ``found``, because a later attempt claimed the task since.

    Engines without a native conditional write (memory) call this under their lock; engines
    with one (DynamoDB, Redis) encode the same rule in their condition.
    """
    if found is None or (found.expires_at is not None and found.expires_at < now):
        return False
    return found.attempts > attempt


def claimed_record(
    found: ResultRecord | None,
    task_id: str,
    task_name: str,
    owner: str,
    lease: float,
    now: float,
    expires_at: int | None,
    delivery: Delivery | None = None,
) -> ResultRecord:
    """The record a successful claim stores."""
    attempts = found.attempts if found is not None else 0
    return ResultRecord(
        task_id=task_id,
        task_name=task_name,
        state=State.STARTED,
        attempts=attempts + 1,
        date_started=now,
        expires_at=expires_at,
        lease_owner=owner,
        lease_expires_at=now + lease,
        lease_message_id=delivery.message_id if delivery else None,
        lease_receive_count=delivery.receive_count if delivery else None,
    )


def revoked_record(
    found: ResultRecord | None, task_id: str, now: float, expires_at: int | None
) -> ResultRecord:
    """The record a revoke stores (attempts and name kept from ``found``)."""
    return ResultRecord(
        task_id=task_id,
        task_name=found.task_name if found else "",
        state=State.REVOKED,
        attempts=found.attempts if found else 0,
        date_done=now,
        expires_at=expires_at,
    )
