"""Flow control in the executor: a message is admitted (its rate slot and its concurrency
lease taken) before its task id is claimed, so that waiting never counts as an attempt.

- Over its rate limit, a message is re-sent to run at the slot the bucket reserved for it
  (``ResultBackend.reserve_rate``), the way a hop is, and deleted: ``Action.RESEND``, not an
  attempt, never held in memory. A visibility change would count as a receive, and the
  queue's ``maxReceiveCount`` would then dead-letter it for waiting. The re-sent message
  holds its slot (``Message.rate_slot``): its first delivery runs without taking another.
- At its concurrency cap, a worker's task thread first waits up to ``CAP_WAIT_SECONDS`` for a
  slot (``wait_for_slots``): a slot freed in this process is handed to it at once, one freed
  elsewhere is seen within ``CAP_POLL_SECONDS``. The message stays received meanwhile (the
  heartbeat keeps it hidden; its receive count does not move). Any of the worker's threads
  may wait. The last waiter of a cap gives way (re-sends its message) at its next check once
  a received message that may run at once waits for a thread (``_gives_way``), so waiting
  holds up other work one poll at most; a message of the same cap may not run at once, and
  giving way to it only sent the worker's look-ahead of a capped backlog round and round
  through re-send delays (a re-send per capped run and more, and a cap of 3 kept 2.4 to 2.6
  running; now about 0.1 and 2.6 to 2.9). A run's end hands its
  lease straight to the first thread of the same process waiting on that cap, without a
  backend call (``release``), and only that first thread asks the backend: a handoff through
  the backend (release, a waiter's next poll, acquire) left a slot idle ~20 ms per run on the
  emulator, and every waiter polling loaded it further (a cap of 3 on 0.2 s tasks kept 2.2 to
  2.6 running on average). A process thus keeps a slot while it has a thread waiting for it;
  the other processes and the Lambda function take it once it has none. Still refused, or on
  Lambda (no waiting: it is billed, and an invocation's records would wait on each other), it
  is re-sent in 1 or 2 s (``CAP_RETRY_SECONDS``) the way a rate-limited message is. A re-send
  alone left the slots idle from a run's end to the next delivery: a cap of 3 on 0.2 s tasks
  kept 0.8 running on average; the re-sent backlog came back in waves.
- A lease lasts ``lease_seconds``: the worker's heartbeat renews it (``renew``), the task's
  return (or raise) releases it, before the outcome is stored; a crashed worker's lease ends by
  itself. On Lambda (no heartbeat) it lasts the function's timeout.

The rules are the backend's (``cloudq.backends.flow``); the options the task's
(``cloudq.core.flow``).
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Callable
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
    from cloudq.runtime.outcome import Prepared
    from cloudq.transports.base import ReceivedMessage

logger = logging.getLogger("cloudq.execution")

#: A message refused by a concurrency cap comes back after a whole number of seconds drawn
#: between these (SQS delays are whole seconds): a slot's end cannot be known in advance, and
#: a backlog re-sent with one delay came back in one wave that the waiting threads could not
#: hold, leaving the slots idle until the next one.
CAP_RETRY_SECONDS = (1, 2)
#: The longest a worker's task thread waits for a slot of a cap before its message is re-sent
#: (well within any visibility timeout: the heartbeat renews it meanwhile).
CAP_WAIT_SECONDS = 2.0
#: How often the first thread waiting on a cap asks the backend again (a slot freed in this
#: process is handed to it at once): per process and cap, at most this many lease calls a
#: second.
CAP_POLL_SECONDS = 0.02
#: The longest a task thread waits for the slot its message holds (the broker's delay
#: granularity: one second).
SLOT_WAIT_SECONDS = 1.0
#: Received messages whose cap a waiter remembers (``Flow._cap_key``), at most.
CAP_KEYS_KEPT = 1024
#: A lease's length where nothing renews it and no timeout is known: Lambda's longest timeout.
DEFAULT_LEASE_SECONDS = 900.0


@dataclass(frozen=True, eq=False)
class Lease:
    """A concurrency lease held for one run (compared by identity: a lease handed on to the
    next run is a new one of the same holder)."""

    key: str
    holder: str
    limit: int


@dataclass(eq=False)
class _Waiter:
    """A task thread waiting for a slot; ``granted``: the lease a run's end handed it."""

    granted: Lease | None = None


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
        #: Waiting for slots (``wait_for_slots``): none until a worker allows it.
        self._wait_seconds = 0.0
        self._waiters_allowed = 0
        self._waiting = 0
        self._queued: Callable[[], list[ReceivedMessage]] = list
        self._prepare: Callable[[ReceivedMessage], Prepared] | None = None
        #: The cap each received message looked at by a waiter waits on (``_cap_key``).
        self._cap_keys: dict[tuple[str, str], str | None] = {}
        self._freed = threading.Condition(self._lock)
        #: The threads waiting on each cap (lease key), first come first served: a released
        #: lease of that key is handed to the first (``_Waiter.granted``).
        self._waiters: dict[str, list[_Waiter]] = {}

    def wait_for_slots(
        self,
        threads: int,
        queued: Callable[[], list[ReceivedMessage]],
        prepare: Callable[[ReceivedMessage], Prepared],
        seconds: float = CAP_WAIT_SECONDS,
    ) -> None:
        """Let up to ``threads`` task threads wait up to ``seconds`` each for a slot of a cap
        before re-sending their message, giving up sooner when a received message that waits
        for a thread (``queued()``, decoded with ``prepare``) may run at once (``_gives_way``).
        A worker calls it; Lambda never waits."""
        self._waiters_allowed = threads
        self._queued = queued
        self._prepare = prepare
        self._wait_seconds = seconds

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
            if not self._acquired(backend, lease):
                waited = self._waited_for_slot(backend, lease)
                if waited is None:
                    slot = self.app.clock.time() + random.randint(*CAP_RETRY_SECONDS)  # noqa: S311 - jitter
                    return self._later(message, attempts, slot, "at its concurrency cap", holds_slot)
                return waited  # held already
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

    def _waited_for_slot(self, backend: ResultBackend, lease: Lease) -> Lease | None:
        """The lease this thread got while it waited for a slot of ``lease.key``: handed over
        by a run of this process that ended, or taken from the backend at a poll. ``None`` at
        once when waiting is not allowed or enough threads wait already, and as soon as other
        messages are left queued for a thread (they need this one)."""
        waiter = _Waiter()
        with self._lock:
            if self._waiting >= self._waiters_allowed:
                return None
            self._waiting += 1
            self._waiters.setdefault(lease.key, []).append(waiter)
        # Real time, as the condition's wait: a manual clock would never end the wait.
        deadline = time.monotonic() + self._wait_seconds
        polled: Lease | None = None
        failed = False
        try:
            while (left := deadline - time.monotonic()) > 0:
                with self._freed:
                    if waiter.granted is None:
                        self._freed.wait(min(CAP_POLL_SECONDS, left))
                    if waiter.granted is not None:
                        break
                    asks = self._waiters[lease.key][0] is waiter  # the others are handed slots
                if asks and self._acquired(backend, lease):
                    polled = lease
                    break
                if self._gives_way(lease.key, waiter):
                    break
        except BaseException:
            failed = True
            raise
        finally:
            with self._lock:
                self._waiting -= 1
                line = self._waiters.get(lease.key, [])
                if waiter in line:
                    line.remove(waiter)
                if not line:
                    self._waiters.pop(lease.key, None)
                if polled is not None:
                    self._held[polled.holder] = polled
            # Handed a lease while its own poll took one, or while it failed: the spare goes on.
            if waiter.granted is not None and (polled is not None or failed):
                self.release(waiter.granted)
        return polled or waiter.granted

    def _gives_way(self, key: str, waiter: _Waiter) -> bool:
        """Whether ``waiter``, waiting on cap ``key``, gives its thread up: it is the last of
        its line (one at a time gives way), and a received message waiting for a thread may
        run at once. A message of the same cap may not (this line gets its slot first): the
        worker's look-ahead of a capped backlog would otherwise send every waiter's message
        back into a re-send delay, over and over."""
        with self._lock:
            line = self._waiters.get(key)
            if not line or line[-1] is not waiter:
                return False
        return any(self._cap_key(received) != key for received in self._queued())

    def _cap_key(self, received: ReceivedMessage) -> str | None:
        """The cap that ``received`` would wait on, or ``None`` if it may run (or leave) at
        once as far as can be told without a payload store: no cap, a rate limit or an ETA
        first, a key that cannot be computed. Each message is decoded once."""
        handle = (received.queue, received.receipt_handle)
        with self._lock:
            if handle in self._cap_keys:
                return self._cap_keys[handle]
        key = self._decoded_cap_key(received)
        with self._lock:
            if len(self._cap_keys) >= CAP_KEYS_KEPT:
                self._cap_keys.clear()
            self._cap_keys[handle] = key
        return key

    def _decoded_cap_key(self, received: ReceivedMessage) -> str | None:
        assert self._prepare is not None  # set with the waiting
        prepared = self._prepare(received)
        task, message = prepared.task, prepared.message
        if task is None or message is None:
            return None
        flow = task.flow
        if flow.max_concurrency is None or flow.rate is not None:
            return None
        if message.eta is not None and message.eta > self.app.clock.time():
            return None
        signature = task.arguments.signature
        if flow.concurrency_key is None:
            return flow_key(task.name, None, signature, (), {})
        if message.payload is not None:
            return None  # its arguments are in the payload store: not read for a guess
        try:
            args, kwargs = task.arguments.decode(*self.app.codec.load_arguments(message))
            return flow_key(task.name, flow.concurrency_key, signature, args, kwargs)
        except Exception:  # noqa: BLE001 - the run reports a bad argument or key; here it may run
            return None

    def _acquired(self, backend: ResultBackend, lease: Lease) -> bool:
        """Whether ``lease`` was taken in the backend now (a slot of its cap was free)."""
        now = self.app.clock.time()
        return backend.acquire_lease(lease.key, lease.holder, lease.limit, self.lease_seconds, now) == 0

    def release(self, lease: Lease | None) -> None:
        """End a run's lease (best effort: an unreleased lease ends by itself): to the first
        thread of this process waiting on its cap if any (no backend call: the slot stays
        taken, now by that thread's run), else in the backend. Once: a lease released already
        is left alone."""
        if lease is None:
            return
        with self._lock:
            if self._held.get(lease.holder) is not lease:
                return
            del self._held[lease.holder]
            line = self._waiters.get(lease.key)
            if line:
                waiter = line.pop(0)
                if not line:
                    del self._waiters[lease.key]
                # A new value: the ended run's own release (``is``) must not end it again.
                handed = Lease(lease.key, lease.holder, lease.limit)
                waiter.granted = self._held[lease.holder] = handed
                self._freed.notify_all()
                return
        backend = self.app.backend
        assert backend is not None  # a lease was taken from it
        try:
            backend.release_lease(lease.key, lease.holder)
        except BackendError as exc:
            text = "lease %s of %s not released (%s); it ends by itself"
            logger.warning(text, lease.holder, lease.key, exc)
            return
        with self._freed:
            self._freed.notify_all()

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
