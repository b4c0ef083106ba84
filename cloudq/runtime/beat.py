"""``cloudq beat``: sends an app's periodic tasks on their schedules, where EventBridge
Scheduler does not (Redis, laptops, seconds-level intervals).

Several beats may run at once (for availability): each tick is sent by one of them. The lock
is the claim of the result backend (``claim_decision`` in ``cloudq/backends/base.py``, one
conditional write on every engine) on the key ``beat:<periodic task>:<tick>``:

- the beat whose claim wins sends the tick's message, then records the key as SUCCESS; the
  others find it SUCCESS (skip) or leased (look again when the lease ends);
- a beat that dies after its claim and before sending leaves a lease that ends after
  ``BEAT_LEASE_SECONDS``: another beat then sends the tick, late but not lost;
- a beat that dies after sending and before recording lets another send the tick again;
  the message's task id is the tick's own (``PeriodicTask.task_id``), so with a result
  backend the task still runs once.

Missed ticks (no beat was running) are not sent, unless ``catch_up`` is set: then the ticks
since the last one any beat recorded are sent, the oldest first, at most ``MAX_CATCH_UP_TICKS``
per task; past those the beat goes on from now. The record of the last tick
(``beat:<periodic task>:last``) never expires, so catch-up reaches back over any outage.

Run-time schedules (``app.schedules``) that live in the result backend (``schedule_store``
``backend``: every broker but SQS, unless set) are read again every
``SCHEDULES_REFRESH_SECONDS``, so every beat picks a new one up within a second and drops a
deleted one as soon; their ticks take the same lock. A one-off ``at()`` schedule has one tick,
due even when its moment passed before a beat saw it; the beat that finds the tick done
deletes the schedule (the definition it fired only: ``schedule_change``).

The beat reads the time from the app's clock (``app.clock``, ``cloudq.core.clock``).
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from typing import TYPE_CHECKING

from cloudq.app.schedules import BACKEND_KEY, store_of
from cloudq.backends.base import ClaimStatus, ResultRecord, State
from cloudq.core.errors import BackendError, ConfigurationError, TransportError
from cloudq.core.message import Message
from cloudq.core.schedules import from_definition

if TYPE_CHECKING:
    from cloudq.app.base import CloudQ
    from cloudq.backends.base import ResultBackend
    from cloudq.core.schedules import PeriodicTask

logger = logging.getLogger("cloudq.beat")  # its name before the move

#: How long a beat's claim on a tick holds off the others: sending takes milliseconds.
BEAT_LEASE_SECONDS = 5.0
#: A tick's record (its lock, ``beat:<name>:<tick>``) is kept this long after it is sent: far
#: longer than beats racing for one tick need. The ``last`` record has no TTL.
TICK_RECORD_SECONDS = 86_400
#: After a failed claim or send, the tick is tried again this much later.
BEAT_RETRY_SECONDS = 2.0
#: The longest single sleep, so that a stop is noticed.
MAX_SLEEP_SECONDS = 1.0
#: At most this many missed ticks of one periodic task are sent at start (``catch_up``).
MAX_CATCH_UP_TICKS = 100
#: How often the run-time schedules are read again: a new one is sent from its next tick.
SCHEDULES_REFRESH_SECONDS = 1.0
LOCK_TASK_NAME = "cloudq.runtime.beat"


def tick_key(periodic: PeriodicTask, tick: float) -> str:
    return f"beat:{periodic.name}:{int(tick)}"


def last_key(periodic: PeriodicTask) -> str:
    return f"beat:{periodic.name}:last"


class Beat:
    """The periodic tasks of one app, sent on time by one of any number of beats."""

    def __init__(
        self,
        app: CloudQ,
        *,
        catch_up: bool = False,
        owner: str | None = None,
    ) -> None:
        #: Whether the app's run-time schedules are this beat's to send.
        self.runtime = store_of(app) == "backend"
        if not app.periodic_tasks and not self.runtime:
            raise ConfigurationError(
                f"app {app.name!r} has no periodic tasks: add one with @app.periodic(...) or "
                "app.add_periodic (its run-time schedules live in EventBridge Scheduler: "
                "schedule_store 'scheduler')"
            )
        backend = app.backend
        if backend is None:
            raise ConfigurationError(
                f"cloudq beat needs a result backend for its lock (app {app.name!r} has backend=None); "
                "set backend (CLOUDQ_BACKEND), e.g. dynamodb://table or redis://host:6379/0"
            )
        clock = app.clock
        for periodic in app.periodic_tasks.values():
            periodic.schedule.next_after(clock.time())  # refuses what beat cannot evaluate, now
        self.app = app
        self.backend: ResultBackend = backend
        self.catch_up = catch_up
        self.owner = owner or f"beat-{uuid.uuid4().hex[:8]}"
        self.clock = clock
        self.sent = 0
        #: The periodic tasks and run-time schedules sent, by name, and the stored definition
        #: of each run-time one.
        self.tasks: dict[str, PeriodicTask] = dict(app.periodic_tasks)
        self.definitions: dict[str, str] = {}
        self._unreadable: set[str] = set()

    def first_ticks(self, now: float) -> dict[str, list[float]]:
        """Per periodic task, the ticks due at start: none, or the missed ones (catch-up): from
        the one after the last recorded, the oldest ``MAX_CATCH_UP_TICKS`` up to ``now``."""
        due: dict[str, list[float]] = {}
        for periodic in self.app.periodic_tasks.values():
            ticks: list[float] = []
            last = self.backend.get(last_key(periodic)) if self.catch_up else None
            if last is not None and isinstance(last.value, (int, float)):
                tick = periodic.schedule.next_after(float(last.value))
                while tick <= now and len(ticks) < MAX_CATCH_UP_TICKS:
                    ticks.append(tick)
                    tick = periodic.schedule.next_after(tick)
            due[periodic.name] = ticks
        return due

    def send_tick(self, periodic: PeriodicTask, tick: float) -> float | None:
        """Send one tick unless another beat has or is sending it. Returns ``None`` when the
        tick is done (by anyone), or seconds after which to look at it again."""
        now = self.clock.time()
        key = tick_key(periodic, tick)
        expires = int(now + TICK_RECORD_SECONDS)
        try:
            claim = self.backend.claim(key, LOCK_TASK_NAME, self.owner, BEAT_LEASE_SECONDS, now, expires)
            if claim.status is ClaimStatus.ALREADY_SUCCEEDED:
                return None
            if claim.status is ClaimStatus.LEASED:
                return max(claim.lease_remaining, 0.1)
            message = Message(
                id=periodic.task_id(tick), task=periodic.task, args=periodic.args, kwargs=periodic.kwargs
            )
            self.app.send_message(message, periodic.queue)
            done = ResultRecord(
                task_id=key, task_name=LOCK_TASK_NAME, state=State.SUCCESS, date_done=now, expires_at=expires
            )
            self.backend.put(done)
            # The last tick's record never expires: catch-up starts from it after any outage.
            last = {"task_id": last_key(periodic), "value": tick, "expires_at": None}
            self.backend.put(done.model_copy(update=last))
        except (BackendError, TransportError) as exc:
            logger.warning("tick %s of %s not sent yet: %s", int(tick), periodic.name, exc)
            return BEAT_RETRY_SECONDS
        self.sent += 1
        logger.info(
            "sent %s (tick %d) to queue %s as task %s", periodic.name, tick, periodic.queue, message.id
        )
        return None

    def run(self, stop: threading.Event | None = None) -> None:
        """Send ticks until ``stop`` is set."""
        stop = stop or threading.Event()
        self.start()
        while not stop.is_set():
            stop.wait(self.step(stop))

    def start(self) -> None:
        """Take the ticks due at start (catch-up) and the next tick of each periodic task."""
        now = self.clock.time()
        #: (name, tick) → when to try it
        self.pending: dict[tuple[str, float], float] = {
            (name, tick): now for name, ticks in self.first_ticks(now).items() for tick in ticks
        }
        self.upcoming = {name: periodic.schedule.next_after(now) for name, periodic in self.tasks.items()}
        self._refreshed = -math.inf
        logger.info(
            "cloudq beat %s: %s%s",
            self.owner,
            ", ".join(f"{p.name} {p.schedule.expression}" for p in self.tasks.values()),
            " and the run-time schedules" if self.runtime else "",
        )

    def step(self, stop: threading.Event | None = None) -> float:
        """Send the ticks due now (after ``start``); the seconds until the next step."""
        now = self.clock.time()
        pending, upcoming = self.pending, self.upcoming
        if self.runtime and now - self._refreshed >= SCHEDULES_REFRESH_SECONDS:
            self._refreshed = now
            self.refresh(now)
        for name, tick in list(upcoming.items()):
            while tick <= now:
                pending[(name, tick)] = tick
                tick = self.tasks[name].schedule.next_after(tick)
            upcoming[name] = tick
        for (name, tick), when in sorted(pending.items(), key=lambda item: item[1]):
            if when <= now and not (stop and stop.is_set()):
                later = self.send_tick(self.tasks[name], tick)
                if later is None:
                    del pending[(name, tick)]
                    self._forget_if_one_off(name)
                else:
                    pending[(name, tick)] = self.clock.time() + later
        wake = min([*upcoming.values(), *pending.values()], default=math.inf)
        return min(max(wake - self.clock.time(), 0.0), MAX_SLEEP_SECONDS)

    def refresh(self, now: float) -> None:
        """Read the run-time schedules again: drop the deleted or changed ones (with their
        pending ticks), add the new ones from their next tick (a one-off: its one tick)."""
        try:
            stored = self.backend.schedules(BACKEND_KEY)
        except BackendError as exc:
            logger.warning("run-time schedules not read: %s", exc)
            return
        upcoming, pending = self.upcoming, self.pending
        current = {}
        for name, text in stored.items():
            if name in self.app.periodic_tasks:
                continue
            try:
                current[name] = from_definition(name, text)
            except ConfigurationError as exc:
                if text not in self._unreadable:  # once, not every second
                    self._unreadable.add(text)
                    logger.warning("%s", exc)
        for name in [name for name in self.tasks if name not in self.app.periodic_tasks]:
            if current.get(name) != self.tasks[name]:
                del self.tasks[name]
                upcoming.pop(name, None)
                for key in [key for key in pending if key[0] == name]:
                    del pending[key]
        for name, periodic in current.items():
            if name not in self.tasks:
                self.tasks[name] = periodic
                schedule = periodic.schedule
                upcoming[name] = (
                    schedule.at_seconds if schedule.at_seconds is not None else schedule.next_after(now)
                )
        self.definitions = {name: stored[name] for name in current}

    def _forget_if_one_off(self, name: str) -> None:
        """After a one-off's tick is done (by any beat), delete it: the definition fired only."""
        definition = self.definitions.get(name)
        if definition is None or not self.tasks[name].schedule.one_off:
            return
        try:
            if self.backend.delete_schedule(BACKEND_KEY, name, expected=definition):
                logger.info("schedule %s deleted after its one tick", name)
        except BackendError as exc:  # the next refresh finds it, its tick done, and tries again
            logger.warning("schedule %s not deleted yet: %s", name, exc)
