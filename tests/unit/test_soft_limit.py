"""Soft time limits: ``SoftTimeLimitExceeded`` raised inside the running task at its
``soft_timeout`` (README "Flow control"), and never outside the run."""

from __future__ import annotations

import time

import pytest

from cloudq import CloudQ, SoftTimeLimitExceeded, State
from cloudq.testing import FakeLambdaContext, drain, sqs_event
from tests.tasks import make_app


@pytest.fixture
def app() -> CloudQ:
    # Real time: the limit is raised by a timer thread.
    return make_app("soft", broker="memory://", backend="memory://")


def test_a_looping_task_sees_the_exception_at_its_soft_timeout_and_its_finally_runs(app: CloudQ) -> None:
    # Given a task with soft_timeout=1 that would loop for 10 s
    result = app.tasks["soft_looped"].delay(10.0)
    # When it runs
    drain(app)
    # Then SoftTimeLimitExceeded reached it about 1 s after its start, through its finally
    seen = result.get(timeout=1)
    assert seen["finally_ran"] is True
    # (the limit counts from the run's start, a little before the body's: 0.89 s
    # was seen on a loaded machine, so the lower bound only guards against far too early)
    assert 0.5 <= seen["raised_after"] < 1.2


def test_an_unhandled_soft_limit_is_the_tasks_failure_under_its_retry_policy(app: CloudQ) -> None:
    # Given a task that leaves SoftTimeLimitExceeded unhandled, with max_retries=0
    result = app.tasks["soft_unhandled"].delay()
    # When it runs / Then it failed with that error (no retries left), like any exception
    drain(app, raise_failures=False)
    record = result.record()
    assert record is not None and record.state is State.FAILURE
    assert record.error_type == "SoftTimeLimitExceeded"


def test_a_task_that_ends_in_time_is_not_interrupted(app: CloudQ) -> None:
    # Given a task with a 1 s soft limit that works 0.1 s
    result = app.tasks["soft_looped"].delay(0.1)
    drain(app)
    # Then it ended without the exception, and nothing lands in this thread afterwards
    assert result.get(timeout=1) == {"raised_after": None, "finally_ran": True}
    _busy(1.0)


def test_on_lambda_a_soft_limited_task_is_stopped_a_margin_before_the_invocation_ends(app: CloudQ) -> None:
    # Given a task with a 5 s soft limit that loops, on an invocation with 2.5 s left: its
    # limit moves to a margin (1 s) before the invocation ends
    @app.task(name="soft_long", soft_timeout=5, max_retries=0)
    def soft_long() -> float:
        started = time.monotonic()
        try:
            _busy(10)
        except SoftTimeLimitExceeded:
            return time.monotonic() - started
        return -1.0

    result = soft_long.delay()
    # When the handler runs it
    assert app.lambda_handler(sqs_event(app), FakeLambdaContext(timeout_seconds=2.5)) == {
        "batchItemFailures": []
    }
    # Then it was raised at that margin, 1.5 s after its start
    assert result.get(timeout=1) == pytest.approx(1.5, abs=0.15)


def _busy(seconds: float) -> None:
    """Pure bytecode for ``seconds``: where an asynchronous exception lands."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
