"""Lines from many threads, written to a stream in batches (log lines and EMF metric lines)."""

from __future__ import annotations

import collections
import threading
from typing import TextIO


class PendingLines:
    """Lines added from any thread and written to a stream together: one write and one flush
    for every line waiting, not one of each per line. Each is a system call, and made once per
    line from a worker's threads contending for the GIL they cost CPU-bound workers a third of
    their throughput (``bench/bench_status.py``) and a no-op task a tenth of its CPU
    (``bench/run.py``). Adding never waits (a deque's append is atomic); writes happen one at
    a time, each line once, in the order added."""

    def __init__(self) -> None:
        self._lines: collections.deque[str] = collections.deque()
        self._lock = threading.Lock()

    def add(self, line: str) -> int:
        """Queue ``line`` (no newline); how many lines wait now."""
        self._lines.append(line)
        return len(self._lines)

    def write_to(self, stream: TextIO) -> None:
        """Write every line waiting (one added meanwhile goes now or with the next write)."""
        with self._lock:
            lines = []
            while True:
                try:
                    lines.append(self._lines.popleft())
                except IndexError:
                    break
            if lines:
                stream.write("\n".join(lines) + "\n")
                stream.flush()

    def after_fork(self) -> None:
        """In a forked child: a lock held by a thread of the parent is released."""
        self._lock = threading.Lock()
