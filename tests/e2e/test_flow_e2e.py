"""Flow control end to end (README "Flow control"), short forms: real worker processes on
Redis, the Lambda function on the emulator's trigger. The full forms run under ``make flow``
(``tests/e2e/test_flow_full_e2e.py``)."""

from __future__ import annotations

from cloudq import CloudQ
from tests.e2e.conftest import WorkerFactory


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
