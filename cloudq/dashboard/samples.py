"""The queue page's sparklines: the dashboard's own samples of each queue's backlog (visible,
not visible and delayed), taken each time the panel is read, kept for ``SPAN_SECONDS``. Nobody
watching, no samples: the dashboard reads nothing in the background."""

from __future__ import annotations

import threading
from collections import deque

from cloudq.core.clock import SYSTEM_CLOCK, Clock

SPAN_SECONDS = 600.0
WIDTH, HEIGHT = 120, 24


class Samples:
    def __init__(self, clock: Clock = SYSTEM_CLOCK, span_seconds: float = SPAN_SECONDS) -> None:
        self._clock = clock
        self._span = span_seconds
        self._lock = threading.Lock()
        self._series: dict[str, deque[tuple[float, int]]] = {}

    def add(self, queue: str, backlog: int) -> None:
        now = self._clock.monotonic()
        with self._lock:
            series = self._series.setdefault(queue, deque())
            series.append((now, backlog))
            while series and series[0][0] < now - self._span:
                series.popleft()

    def values(self, queue: str) -> list[int]:
        with self._lock:
            return [value for _, value in self._series.get(queue, ())]

    def points(self, queue: str) -> str:
        """The SVG polyline points of ``queue``'s sparkline (``WIDTH`` × ``HEIGHT``), the last
        sample at the right; empty with fewer than two samples."""
        values = self.values(queue)
        if len(values) < 2:
            return ""
        top = max(values) or 1
        step = WIDTH / (len(values) - 1)
        return " ".join(
            f"{index * step:.1f},{HEIGHT - 1 - (HEIGHT - 2) * value / top:.1f}"
            for index, value in enumerate(values)
        )
