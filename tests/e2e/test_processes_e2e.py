"""``cloudq worker --processes P``: a child stuck past its task's time limit is killed and
replaced, and the other work goes on."""

from __future__ import annotations

import os
import signal
import time

import pytest

from cloudq import CloudQ, TaskError
from tests.e2e.conftest import WorkerFactory, side_effects, wait_for_side_effect


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_hung_process_is_killed_and_replaced(
    e2e_app: CloudQ, start_worker: WorkerFactory, e2e_env: dict[str, str]
) -> None:
    # Given two worker processes of one thread each, and a task that hangs past its 1 s limit
    supervisor = start_worker("--processes", "2", "-c", "1", "--visibility-timeout", "2", "--grace", "2")
    hung = e2e_app.tasks["hang"].delay("stuck")
    wait_for_side_effect(e2e_env, "hang")
    [first_run] = side_effects(e2e_env, "hang")
    stuck_pid = int(first_run.split()[1])
    # When the time limit and the grace pass, Then the stuck process is killed...
    deadline = time.monotonic() + 30
    while _alive(stuck_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(stuck_pid)
    # ...and replaced: two live processes, neither the stuck one, serve a burst of tasks
    deadline = time.monotonic() + 30
    pids: set[int] = set()
    while len(pids) < 2 and time.monotonic() < deadline:
        # Each process runs one task at a time, so a burst of slow tasks reaches both.
        burst = [e2e_app.tasks["pid"].delay(0.5) for _ in range(4)]
        pids = {result.get(timeout=20) for result in burst}
    assert len(pids) == 2 and stuck_pid not in pids
    # ...its task follows the retry policy (max_retries=0: one attempt, then FAILURE)...
    with pytest.raises(TaskError, match="gave up after 1 attempts"):
        hung.get(timeout=30)
    # ...and the supervisor still serves work and stops cleanly on SIGTERM
    assert e2e_app.tasks["add"].delay(2, 3).get(timeout=20) == 5
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=30) == 0
