"""Flow control end to end (README "Flow control"), short forms: real worker processes on
Redis, the Lambda function on the emulator's trigger. The full forms run under ``make flow``
(``tests/e2e/test_flow_full_e2e.py``)."""

from __future__ import annotations

import time

import pytest

from cloudq import CloudQ
from tests.e2e.conftest import WorkerFactory
from tests.tasks import make_app


def test_a_soft_limit_reaches_a_looping_task_on_a_thread_worker_and_under_processes(
    redis_app: CloudQ, start_worker: WorkerFactory
) -> None:
    # Given a thread worker on one queue and a worker of 2 processes on another, and on each
    # a task with soft_timeout=1 that would loop 10 s
    start_worker("-Q", "default", "-c", "2")
    start_worker("-Q", "orders.fifo", "--processes", "2", "-c", "1")
    task = redis_app.tasks["soft_looped"]
    on_threads = task.delay(10.0)
    under_processes = task.apply_async((10.0,), queue="orders.fifo", message_group_id="soft")
    # When they run / Then each saw SoftTimeLimitExceeded within 1.2 s, through its finally
    for result in (on_threads, under_processes):
        seen = result.get(timeout=30)
        assert seen["finally_ran"] is True
        assert 0.9 <= seen["raised_after"] < 1.2


@pytest.fixture
def laned_app(redis_app: CloudQ, e2e_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> CloudQ:
    """``redis_app`` with a high lane on its default queue, for it and its workers."""
    monkeypatch.setenv("CLOUDQ_PRIORITY_QUEUES", "default")
    e2e_env["CLOUDQ_PRIORITY_QUEUES"] = "default"
    return make_app(e2e_env["CLOUDQ_TEST_APP"])


def test_a_high_task_starts_soon_behind_a_backlog_of_default_ones(
    laned_app: CloudQ, start_worker: WorkerFactory
) -> None:
    # Given a backlog of 200 default tasks of 0.2 s on a busy worker of 4 threads
    work = laned_app.tasks["lane_work"]
    work.map([0.2] * 200)
    start_worker("-c", "4")
    work.apply_async((0.0,), priority="high").get(timeout=30)  # the worker is up, and busy
    # When 5 high tasks are sent, one at a time
    waits = []
    for _ in range(5):
        sent = time.time()
        started = work.apply_async((0.0,), priority="high").get(timeout=30)
        waits.append(started - sent)
    # Then each started within a few seconds (the backlog takes 10 s; bench/bench_flow.py
    # measures the figure)
    assert max(waits) < 3, waits
    assert laned_app.transport.stats("default").visible > 100


def test_weighted_lanes_keep_the_default_lane_moving(laned_app: CloudQ, start_worker: WorkerFactory) -> None:
    # Given 40 high and 8 default tasks of 0.1 s queued for a worker of 2 threads, weighted 4:1
    work = laned_app.tasks["lane_work"]
    highs = work.map([0.1] * 40, priority="high")
    defaults = work.map([0.1] * 8)
    start_worker("-c", "2", "--lanes", "weighted:4:1")
    # When they run
    high_starts = [result.get(timeout=30) for result in highs]
    default_starts = [result.get(timeout=30) for result in defaults]
    # Then default tasks kept starting while high ones waited (strict lanes: 1 seen, by chance)
    during = [min(high_starts) < start < max(high_starts) for start in default_starts]
    assert sum(during) >= 4, (high_starts, default_starts)
