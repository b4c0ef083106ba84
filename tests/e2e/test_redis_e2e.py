"""A real ``cloudq worker`` process on the Redis broker and result backend."""

from __future__ import annotations

import signal

from cloudq import CloudQ
from cloudq.transports import OutgoingMessage
from cloudq.transports.base import DeadLetterNote
from tests.e2e.conftest import WorkerFactory, side_effects, wait_for_side_effect


def test_delay_to_get_on_redis(redis_app: CloudQ, start_worker: WorkerFactory) -> None:
    start_worker("-c", "4")
    results = [redis_app.tasks["add"].delay(i, 1) for i in range(20)]
    assert [result.get(timeout=30) for result in results] == [i + 1 for i in range(20)]


def test_a_killed_workers_task_comes_back_and_runs_once_more(
    redis_app: CloudQ, start_worker: WorkerFactory, e2e_env: dict[str, str]
) -> None:
    # Given a worker running a 4 s task with a 2 s visibility timeout
    victim = start_worker("--visibility-timeout", "2")
    result = redis_app.tasks["sleep"].delay(4.0, "again")
    wait_for_side_effect(e2e_env, "sleep")
    # When it is killed mid-task and another worker starts
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    start_worker("--visibility-timeout", "2")
    # Then the task comes back after the visibility timeout and runs once more
    assert result.get(timeout=60) == "again"
    assert side_effects(e2e_env, "sleep") == ["again", "again"]


def test_garbage_lands_in_the_dlq_with_a_reason(redis_app: CloudQ, start_worker: WorkerFactory) -> None:
    redis_app.transport.send("default", [OutgoingMessage("{ not a task")])
    start_worker()
    assert redis_app.tasks["add"].delay(1, 1).get(timeout=30) == 2
    [dead] = redis_app.transport.receive("default-dlq", 10, wait_seconds=5)
    assert dead.body == "{ not a task"
    note = DeadLetterNote.from_attributes(dead.attributes)
    assert note is not None and note.reason.startswith("DecodeError")


def test_progress_is_written_under_the_claim_and_read_back_on_redis(
    redis_app: CloudQ, start_worker: WorkerFactory
) -> None:
    # Given a worker process on Redis and a task reporting 3 steps, reading its handle after each
    start_worker()
    result = redis_app.tasks["progressing"].delay(3)
    # When it runs / Then every report landed through the Lua script and was read as PROGRESS
    assert result.get(timeout=30) == [
        ["PROGRESS", {"done": float(step), "total": 3.0, "message": f"step {step}"}] for step in (1, 2, 3)
    ]
    assert result.progress is None
