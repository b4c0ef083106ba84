"""The one clock: wall time, monotonic time and sleeping, injectable.

Every component that reads the clock (the executor, the beat, the memory engines, result
polling) takes a ``Clock`` and defaults to ``SYSTEM_CLOCK``. A test hands them one
``ManualClock`` and moves it instead of sleeping, so no test depends on today's date or waits
on the real clock.

- ``time()``: seconds since the epoch (records' timestamps and expiry, etas, schedule ticks);
- ``monotonic()``: seconds from an arbitrary origin, for durations and deadlines;
- ``sleep(seconds)``: wait; a ``ManualClock`` moves itself forward instead.

Waits on a ``threading.Event`` or ``Condition`` stay on the real clock: they are woken by
another thread, and the clock only decides how long they may last.
"""

from __future__ import annotations

import threading
import time as _time
from typing import Protocol


class Clock(Protocol):
    """What a component reads the time from."""

    def time(self) -> float:
        """Seconds since the epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin, never going back."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return _time.time()

    def monotonic(self) -> float:
        return _time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            _time.sleep(seconds)


#: The clock every component uses unless it is given another.
SYSTEM_CLOCK: Clock = SystemClock()


class ManualClock:
    """A clock that moves only when told: ``advance(seconds)``, ``set(epoch_seconds)``, or
    ``sleep(seconds)`` (which advances it and returns at once). Thread-safe. Its monotonic
    time moves with its wall time."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._origin = float(start)
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._now - self._origin

    def sleep(self, seconds: float) -> None:
        self.advance(max(seconds, 0.0))

    def advance(self, seconds: float) -> None:
        """Move forward ``seconds`` (never back)."""
        if seconds < 0:
            raise ValueError(f"a clock does not go back (advance({seconds}))")
        with self._lock:
            self._now += seconds

    def set(self, epoch_seconds: float) -> None:
        """Move to ``epoch_seconds`` (not earlier than now)."""
        with self._lock:
            if epoch_seconds < self._now:
                raise ValueError("a clock does not go back")
            self._now = float(epoch_seconds)
