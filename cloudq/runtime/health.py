"""One log line per state change of a dependency (failing, then recovered), not one per call:
a worker riding out an outage says so once, and once more when it is over."""

from __future__ import annotations

import logging
import threading
import time

logger = logging.getLogger("cloudq.health")


class Health:
    def __init__(self) -> None:
        self._down_since: dict[str, float] = {}
        self._lock = threading.Lock()

    def failed(self, what: str, error: Exception) -> None:
        with self._lock:
            if what in self._down_since:
                return
            self._down_since[what] = time.monotonic()
        logger.warning("%s failing: %s (retrying with backoff)", what, error)

    def ok(self, what: str) -> None:
        if not self._down_since:  # the common case, without the lock
            return
        with self._lock:
            since = self._down_since.pop(what, None)
        if since is not None:
            logger.warning("%s recovered after %.1f s", what, time.monotonic() - since)
