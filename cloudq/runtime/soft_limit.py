"""Soft time limits: ``SoftTimeLimitExceeded`` raised inside a running task at its deadline.

A thread cannot be stopped from outside, but CPython can schedule an exception in it
(``PyThreadState_SetAsyncExc``): the thread raises it at its next bytecode boundary, so a
task in a loop sees it at once, and one blocked in a long C call (``time.sleep(60)``, a
socket read) when that call returns. One timer thread per executor (started on first use:
a forked worker process starts its own) fires the runs whose deadline passed. It works the
same on a worker's task threads, in a ``--processes`` child, and on Lambda (the handler's
thread), so the executor arms it the same way everywhere.

The race that matters: the exception must never land outside the run (after the task
returned, in the executor's own code). Each armed run has a lock and a state: the timer
schedules the exception only while the run is ``ARMED``; the run's end sets ``DONE`` under
the same lock and, if the timer got there first, cancels the exception still pending. One
that lands between the task's return and that cancel is caught here and dropped: the run
returned in time.
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from cloudq.core.clock import Clock
from cloudq.core.errors import SoftTimeLimitExceeded

R = TypeVar("R")

ARMED, FIRED, DONE = "armed", "fired", "done"


def _raise_in(thread_id: int, exc: type[BaseException] | None) -> int:
    """Schedule ``exc`` in thread ``thread_id`` (``None``: cancel a pending one); the number
    of threads changed."""
    target = None if exc is None else ctypes.py_object(exc)  # None is passed as NULL
    return int(ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), target))


class _Run:
    """One armed run: the thread it runs on and where it stands."""

    def __init__(self, thread_id: int) -> None:
        self.thread_id = thread_id
        self.state = ARMED
        self.lock = threading.Lock()

    def fire(self) -> None:
        """The timer's side: raise in the run's thread, only while the run is going."""
        with self.lock:
            if self.state is not ARMED:
                return
            _raise_in(self.thread_id, SoftTimeLimitExceeded)
            self.state = FIRED

    def end(self) -> None:
        """The run's side: nothing may be raised from now on."""
        with self.lock:
            fired = self.state is FIRED
            self.state = DONE
        if fired:
            _raise_in(self.thread_id, None)  # still pending, if it has not landed yet


class SoftLimits:
    """Runs functions under a deadline; one timer thread for all of them. Thread-safe."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._due: list[tuple[float, int, _Run]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._timer: threading.Thread | None = None

    def run(self, deadline: float | None, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """``fn(*args, **kwargs)``; past ``deadline`` (epoch seconds on the clock) it raises
        ``SoftTimeLimitExceeded`` where it stands. Without a deadline, just the call."""
        if deadline is None:
            return fn(*args, **kwargs)
        run = _Run(threading.get_ident())
        returned = False
        try:
            try:
                self._arm(run, deadline)  # in the guard: a deadline already past fires at once
                value = fn(*args, **kwargs)
                returned = True
            finally:
                run.end()
        except SoftTimeLimitExceeded:
            if not returned:
                raise
        return value

    def _arm(self, run: _Run, deadline: float) -> None:
        # The timer waits on real time: the clock's reading turned into a monotonic due time.
        due = time.monotonic() + max(0.0, deadline - self.clock.time())
        with self._changed:
            heapq.heappush(self._due, (due, next(self._order), run))
            if self._timer is None or not self._timer.is_alive():
                self._timer = threading.Thread(target=self._loop, name="cloudq-soft-limits", daemon=True)
                self._timer.start()
            self._changed.notify()

    def _loop(self) -> None:
        while True:
            with self._changed:
                while not self._due or self._due[0][0] > time.monotonic():
                    if self._due and self._due[0][2].state is DONE:
                        heapq.heappop(self._due)  # ended in time: forget it now
                        continue
                    wait = None if not self._due else self._due[0][0] - time.monotonic()
                    self._changed.wait(wait)
                _, _, run = heapq.heappop(self._due)
            run.fire()
