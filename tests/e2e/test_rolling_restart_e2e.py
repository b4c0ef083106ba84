"""A rolling restart on the ministack server strands no message (issue 23).

SQS does not cancel a long poll whose client went away: a message sent while an abandoned
poll is still open on the server is handed to it and waits out its visibility timeout before
any other worker sees it. A stopping worker therefore waits for its polls in flight and hands
back what they return; this test restarts real ``cloudq worker`` processes one after another
and checks that no task waits.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from pathlib import Path

from cloudq import CloudQ
from cloudq.app.result import AsyncResult
from cloudq.core.config import WORKER_WAIT_SECONDS
from tests.e2e.conftest import WorkerFactory
from tests.processes import wait_until, worker_log

#: One cycle alone may pass by luck (on the parent commit the dead poll took the next message
#: in 4 of 6 trials): the issue asks for 5 in a row.
CYCLES = 5
TASKS = 10
SEND_EVERY_SECONDS = 1.0
#: Far below the queue's 30 s visibility timeout: no task waited one out.
START_LIMIT_SECONDS = 2.0
#: An idle stop waits for the poll in flight (at most the default wait) and exits.
EXIT_LIMIT_SECONDS = WORKER_WAIT_SECONDS + 1.0
#: Long enough for a message stranded in a dead poll to come back (30 s visibility timeout).
STRANDED_SECONDS = 40.0


class _Stop:
    """SIGTERM ``process`` now and time its exit (on a thread, while the test sends)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._process = process
        self._exited = threading.Event()
        self.seconds = float("inf")
        self.code: int | None = None
        process.send_signal(signal.SIGTERM)
        self._signalled = time.monotonic()
        threading.Thread(target=self._wait, daemon=True).start()

    def _wait(self) -> None:
        self.code = self._process.wait()
        self.seconds = time.monotonic() - self._signalled
        self._exited.set()

    def wait(self, timeout: float) -> None:
        self._exited.wait(timeout)


def _start(start_worker: WorkerFactory, tmp_path: Path, index: int) -> subprocess.Popen[str]:
    """A worker on the default queue with the default long-poll wait, once it has started."""
    process = start_worker("-Q", "default", env={"CLOUDQ_WAIT_SECONDS": f"{WORKER_WAIT_SECONDS:g}"})
    assert wait_until(lambda: "cloudq worker:" in worker_log(tmp_path, index), 30, 0.05), worker_log(
        tmp_path, index
    )
    return process


def _send(app: CloudQ) -> list[tuple[float, AsyncResult[float]]]:
    """``TASKS`` tasks, one per second: (when each was sent, its result)."""
    sent: list[tuple[float, AsyncResult[float]]] = []
    first = time.monotonic()
    for index in range(TASKS):
        time.sleep(max(0.0, first + index * SEND_EVERY_SECONDS - time.monotonic()))
        sent.append((time.time(), app.tasks["start_time"].delay()))
    return sent


def _waited(sent: float, result: AsyncResult[float]) -> float:
    """Seconds from send to start (a stranded task is waited for, to say how late it was)."""
    try:
        return result.get(timeout=STRANDED_SECONDS) - sent
    except TimeoutError:
        return float("inf")


def test_a_rolling_restart_strands_no_message(
    e2e_app: CloudQ, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    # Given an idle worker, long-polling with the default wait
    current = _start(start_worker, tmp_path, 0)
    time.sleep(1.0)
    waits: list[list[float]] = []
    stops: list[_Stop] = []
    for cycle in range(CYCLES):
        # When it gets SIGTERM, a new worker starts, and 10 tasks are sent one per second
        stops.append(_Stop(current))
        current = _start(start_worker, tmp_path, cycle + 1)
        sent = _send(e2e_app)
        waits.append([_waited(at, result) for at, result in sent])
        stops[-1].wait(timeout=EXIT_LIMIT_SECONDS)
        handed_back = re.search(r"handed_back=(\d+)", worker_log(tmp_path, cycle))
        print(
            f"\n[rolling restart] cycle {cycle + 1}: SIGTERM -> exit {stops[-1].seconds:.2f} s "
            f"(code {stops[-1].code}, handed back {handed_back.group(1) if handed_back else '?'}); "
            "tasks started after " + " ".join(f"{seconds:.2f}" for seconds in waits[-1]) + " s"
        )
    # Then every task started within 2 s of its send: none waited in a dead poll
    slowest, cycle, task = max(
        (seconds, cycle, task) for cycle, row in enumerate(waits) for task, seconds in enumerate(row)
    )
    assert slowest <= START_LIMIT_SECONDS, (
        f"cycle {cycle + 1}, task {task + 1} started {slowest:.1f} s after it was sent"
    )
    # And each stopping worker exited cleanly within the long-poll wait + 1 s
    assert [stop.code for stop in stops] == [0] * CYCLES, worker_log(tmp_path, 0)
    exit_seconds = max(stop.seconds for stop in stops)
    assert exit_seconds <= EXIT_LIMIT_SECONDS, f"a worker took {exit_seconds:.1f} s to stop"
