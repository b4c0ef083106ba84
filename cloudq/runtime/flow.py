"""Flow control in the executor: a message is admitted (its rate slot and its concurrency
lease taken) before its task id is claimed, so that waiting never counts as an attempt.

- Over its rate limit, a message is re-sent to run at the slot the bucket reserved for it
  (``ResultBackend.reserve_rate``), the way a hop is, and deleted: ``Action.RESEND``, not an
  attempt, never held in memory. A visibility change would count as a receive, and the
  queue's ``maxReceiveCount`` would then dead-letter it for waiting. The re-sent message
  holds its slot (``Message.rate_slot``): its first delivery runs without taking another.
- At its concurrency cap, it is re-sent in ``CAP_RETRY_SECONDS`` the same way. A lease lasts
  ``lease_seconds``: the worker's heartbeat renews it (``renew``), the run's end releases it;
  a crashed worker's lease ends by itself. On Lambda (no heartbeat) it lasts the function's
  timeout.

The rules are the backend's (``cloudq.backends.flow``); the options the task's
(``cloudq.core.flow``).
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cloudq.core.errors import BackendError
from cloudq.core.flow import flow_key
from cloudq.runtime.outcome import BACKEND_RETRY_SECONDS, Action, Outcome

if TYPE_CHECKING:
    from cloudq.app.base import CloudQ
    from cloudq.app.task import Task
    from cloudq.backends.base import ResultBackend
    from cloudq.core.message import Message
    from cloudq.runtime.attempts import Attempts
    from cloudq.runtime.health import Health
    from cloudq.transports.base import ReceivedMessage

logger = logging.getLogger("cloudq.execution")

#: A message refused by a concurrency cap comes back after this long (the shortest SQS
#: delay): a slot's end cannot be known in advance.
CAP_RETRY_SECONDS = 1
#: The longest a task thread waits for the slot its message holds (the broker's delay
#: granularity: one second).
SLOT_WAIT_SECONDS = 1.0
#: A lease's length where nothing renews it and no timeout is known: Lambda's longest timeout.
DEFAULT_LEASE_SECONDS = 900.0


@dataclass(frozen=True)
class Lease:
    """A concurrency lease held for one run."""

    key: str
    holder: str
    limit: int


class Flow:
    """Admits messages of one app's rate-limited and capped tasks; holds their leases.
    Thread-safe; one per executor."""

    def __init__(self, app: CloudQ, health: Health, worker_id: str) -> None:
        self.app = app
        self.health = health
        self.worker_id = worker_id
        #: How long a lease lasts unless renewed (the worker sets its visibility timeout).
        self.lease_seconds = DEFAULT_LEASE_SECONDS
        self._held: dict[str, Lease] = {}
        self._lock = threading.Lock()

    def admit(
        self,
        task: Task[Any, Any],
        message: Message,
        received: ReceivedMessage,
        attempts: Attempts,
        arguments: tuple[tuple[Any, ...], dict[str, Any]] | None,
    ) -> Lease | Outcome | None:
        """Whether ``message`` may run now: ``None`` (no cap) or the ``Lease`` it holds, to
        ``release`` at the run's end; else the outcome that makes it wait."""
        flow = task.flow
        if flow.rate is None and flow.max_concurrency is None:
            return None
        backend = self.app.backend
        if backend is None:
            why = f"task {task.name}: rate_limit and max_concurrency need a result backend"
            return Outcome.dead_letter(why)
        args, kwargs = arguments or ((), {})
        signature = task.arguments.signature
        now = self.app.clock.time()
        # The first delivery of a message re-sent for its slot holds it; a later delivery
        # (a retry, a crash) takes another.
        holds_slot = message.rate_slot is not None and received.receive_count == 1
        if holds_slot and message.rate_slot is not None and message.rate_slot > now:
            # Broker delays are whole seconds, so it came up to a second early (sent with the
            # delay rounded down): the rest is waited here, or the slots of a second would run
            # together at its end.
            self.app.clock.sleep(min(message.rate_slot - now, SLOT_WAIT_SECONDS))
            now = self.app.clock.time()
        try:
            if flow.rate is not None and not holds_slot:
                key = flow_key(task.name, flow.rate_key, signature, args, kwargs)
                wait = backend.reserve_rate(key, flow.rate.interval, flow.rate_burst, now)
                if wait > 0:
                    return self._later(message, attempts, now + wait, "over its rate limit")
                holds_slot = flow.rate is not None
            if flow.max_concurrency is None:
                return None
            key = flow_key(task.name, flow.concurrency_key, signature, args, kwargs)
            lease = Lease(key, f"{self.worker_id}:{uuid.uuid4().hex[:8]}", flow.max_concurrency)
            if backend.acquire_lease(key, lease.holder, lease.limit, self.lease_seconds, now) > 0:
                slot = now + CAP_RETRY_SECONDS
                return self._later(message, attempts, slot, "at its concurrency cap", holds_slot)
        except BackendError as exc:
            self.health.failed("result backend (flow control)", exc)
            return Outcome.retry(BACKEND_RETRY_SECONDS, reason="not admitted (backend unavailable)")
        with self._lock:
            self._held[lease.holder] = lease
        return lease

    def _later(
        self, message: Message, attempts: Attempts, slot: float, why: str, holds_slot: bool = True
    ) -> Outcome:
        """Re-send ``message`` to run at ``slot`` (a hop: not an attempt)."""
        now = self.app.clock.time()
        later = message.model_copy(update={"retries": attempts.for_hop()})
        if holds_slot:
            # Delivered up to a second before its slot (whole-second delays, rounded down),
            # then waited for in ``admit``.
            delay = min(math.floor(slot - now), self.app.transport.max_delay_seconds)
            later = later.holding_rate_slot(slot, eta=now + delay)
        else:
            delay = min(math.ceil(slot - now), self.app.transport.max_delay_seconds)
            later = later.model_copy(update={"eta": slot})
        reason = f"{why}: re-sent to run in {slot - now:.2f} s"
        return Outcome(Action.RESEND, delay_seconds=delay, reason=reason, body=self.app.encode(later))

    def release(self, lease: Lease | None) -> None:
        """End a run's lease (best effort: an unreleased lease ends by itself)."""
        if lease is None:
            return
        with self._lock:
            self._held.pop(lease.holder, None)
        backend = self.app.backend
        assert backend is not None  # a lease was taken from it
        try:
            backend.release_lease(lease.key, lease.holder)
        except BackendError as exc:
            text = "lease %s of %s not released (%s); it ends by itself"
            logger.warning(text, lease.holder, lease.key, exc)

    def renew(self) -> None:
        """Renew every lease held (the worker's heartbeat calls it)."""
        with self._lock:
            held = list(self._held.values())
        backend = self.app.backend
        if not held or backend is None:
            return
        now = self.app.clock.time()
        for lease in held:
            self._renew(backend, lease, now)

    def _renew(self, backend: ResultBackend, lease: Lease, now: float) -> None:
        try:
            refused = backend.acquire_lease(lease.key, lease.holder, lease.limit, self.lease_seconds, now)
        except BackendError as exc:
            self.health.failed("result backend (lease renewal)", exc)
            return
        if refused:
            text = "lease %s of %s expired before its renewal: the cap may be passed"
            logger.warning(text, lease.holder, lease.key)
