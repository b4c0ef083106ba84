"""Imported at start-up by every Python process of ``make test``'s shifted-clock run (the
Makefile puts this folder on PYTHONPATH), subprocesses included.

Debian's libfaketime 0.9.10 moves the absolute monotonic deadline that ``time.sleep`` passes to
``clock_nanosleep`` by the fake offset, even with FAKETIME_DONT_FAKE_MONOTONIC=1, so every sleep
fails with EINVAL. A timed wait on an ``Event`` is left alone: ``time.sleep`` waits on one here.
"""

from __future__ import annotations

import os
import threading
import time

if os.environ.get("FAKETIME"):

    def _sleep(seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        threading.Event().wait(seconds)

    time.sleep = _sleep
