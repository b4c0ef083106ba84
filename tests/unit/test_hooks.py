"""Task lifecycle hooks (``app.hooks``): called by the one executor, so the worker and the
Lambda handler see the same events."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from cloudq import CloudQ, TaskEvent
from cloudq.testing import FakeLambdaContext, drain, sqs_event
from cloudq.worker import Worker
from tests.tasks import make_app
from tests.unit.test_worker import running


def recorder(app: CloudQ) -> list[tuple[str, str, Any]]:
    """Connect every hook to a list of (hook, task, detail) entries."""
    seen: list[tuple[str, str, Any]] = []

    @app.hooks.before_task
    def before(event: TaskEvent) -> None:
        # the request is current on this thread: the task's own ``request`` works
        assert event.task.request.id == event.request.id
        seen.append(("before", event.request.task, event.request.attempt))

    @app.hooks.after_task
    def after(event: TaskEvent) -> None:
        outcome = type(event.exception).__name__ if event.exception else event.result
        seen.append(("after", event.request.task, outcome))

    @app.hooks.on_retry
    def retry(event: TaskEvent) -> None:
        seen.append(("retry", event.request.task, (event.request.attempt, event.retry_delay)))

    @app.hooks.on_failure
    def failure(event: TaskEvent) -> None:
        seen.append(("failure", event.request.task, event.error_type))

    return seen


def test_a_success_is_announced_before_and_after_the_run(app: CloudQ) -> None:
    # Given hooks on every lifecycle point
    seen = recorder(app)
    # When a task runs
    result = app.tasks["add"].delay(2, 3)
    drain(app)
    # Then it ran between before_task and after_task, which saw its value
    assert result.get(timeout=1) == 5
    assert seen == [("before", "add", 1), ("after", "add", 5)]


def test_retries_and_the_final_failure_are_announced(app: CloudQ) -> None:
    seen = recorder(app)
    app.tasks["always_fails"].delay("x")  # max_retries=2, no delay
    drain(app, raise_failures=False)
    assert seen == [
        ("before", "always_fails", 1),
        ("after", "always_fails", "FlakyError"),
        ("retry", "always_fails", (1, 0.0)),
        ("before", "always_fails", 2),
        ("after", "always_fails", "FlakyError"),
        ("retry", "always_fails", (2, 0.0)),
        ("before", "always_fails", 3),
        ("after", "always_fails", "FlakyError"),
        ("failure", "always_fails", "FlakyError"),
    ]


def test_a_failure_without_a_run_is_announced(app: CloudQ) -> None:
    # Given a message whose arguments do not fit the task (sent by name, unchecked)
    seen = recorder(app)
    app.send_task("add", ["one", "two"])
    drain(app, raise_failures=False)
    # Then on_failure says why, and nothing ran
    assert seen == [("failure", "add", "ArgumentError")]


def test_a_raising_hook_changes_nothing_and_disconnect_removes_one(
    app: CloudQ, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: TaskEvent) -> None:
        raise RuntimeError("hook bug")

    app.hooks.before_task(broken)
    seen = recorder(app)
    assert app.tasks["add"].delay(1, 1).id
    drain(app)
    assert ("after", "add", 2) in seen
    assert "before_task hook" in caplog.text and "hook bug" in caplog.text
    app.hooks.before_task.disconnect(broken)
    assert broken not in app.hooks.before_task.functions


def test_the_lambda_handler_calls_the_same_hooks() -> None:
    app = make_app("hooks-lambda", broker="memory://", backend="memory://")
    seen = recorder(app)
    app.tasks["add"].delay(4, 4)
    assert app.lambda_handler(sqs_event(app), FakeLambdaContext()) == {"batchItemFailures": []}
    assert seen == [("before", "add", 1), ("after", "add", 8)]


def test_the_worker_calls_hooks_on_the_task_thread() -> None:
    # Given a worker with two threads and a hook that records its thread
    app = make_app("hooks-worker", broker="memory://", backend="memory://", wait_seconds=0.1)
    threads: dict[str, set[str]] = {"before": set(), "after": set()}
    app.hooks.before_task(lambda event: threads["before"].add(threading.current_thread().name))
    app.hooks.after_task(lambda event: threads["after"].add(threading.current_thread().name))
    results = [app.tasks["add"].delay(i, 1) for i in range(6)]
    with running(Worker(app, concurrency=2, wait_seconds=0.1)):
        assert [result.get(timeout=10) for result in results] == [i + 1 for i in range(6)]
    # Then before and after ran on the pool's threads, the same ones
    assert threads["before"] == threads["after"]
    assert all(name.startswith("cloudq-task") for name in threads["before"])


@pytest.mark.parametrize("hooked", [False, True])
def test_a_task_may_name_its_parameters_request_and_fn(hooked: bool) -> None:
    # Given a task whose keyword-only parameters have the names of the executor's own helpers
    # (request, fn), with and without hooks (a run without hooks builds no event)
    app = make_app("hooks-names", broker="memory://", backend="memory://")
    ran: list[tuple[str, str]] = []

    @app.task(name="named")
    def named(*, request: str, fn: str) -> str:
        ran.append((request, fn))
        return request + fn

    if hooked:
        recorder(app)
    # When it is sent by keyword and run
    result = named.delay(request="a", fn="b")
    drain(app)
    # Then it ran with them
    assert ran == [("a", "b")] and result.get(timeout=1) == "ab"
