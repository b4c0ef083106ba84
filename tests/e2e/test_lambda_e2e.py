"""The app's Lambda worker deployed into the emulator: ministack polls the queue through the
event source mapping, invokes ``cloudq.aws_lambda.handler`` in a warm local process, and
deletes what the partial batch response does not list. No ``cloudq worker`` runs here."""

from __future__ import annotations

import time
import uuid
from typing import Any

import boto3
import pytest

from cloudq import CloudQ, State, TaskError
from cloudq.core.message import Message
from cloudq.ops.dead_letters import list_dead_letters
from cloudq.transports.base import OutgoingMessage
from tests.e2e.conftest import LambdaFactory, side_effects

SQS_MAX_MESSAGE_BYTES = 1024 * 1024


def _send_batch(app: CloudQ, queue: str, bodies: list[str], group_id: str | None = None) -> None:
    """One SendMessageBatch, so the records arrive together and the trigger takes them as one
    batch."""
    app.transport.send(queue, [OutgoingMessage(body, group_id=group_id) for body in bodies])


def _body(task: str, *args: Any, task_id: str | None = None) -> str:
    return Message(id=task_id or str(uuid.uuid4()), task=task, args=list(args)).encode(SQS_MAX_MESSAGE_BYTES)


def _counts(app: CloudQ, queue: str) -> tuple[int, int]:
    """(visible, in flight) as SQS reports them."""
    stats = app.transport.stats(queue)
    return stats.visible, stats.in_flight


def _wait(condition: Any, timeout: float = 30, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


def test_delayed_tasks_run_through_the_trigger_and_their_results_are_in_dynamodb(
    lambda_app: LambdaFactory,
) -> None:
    app = lambda_app()
    results = [app.tasks["add"].delay(i, 1) for i in range(25)]
    assert [result.get(timeout=30) for result in results] == [i + 1 for i in range(25)]
    # ...and then (on a warm function: a 3 s timeout leaves no room for a cold start) a task
    # with soft_timeout=1 that would loop 10 s saw SoftTimeLimitExceeded within 1.2 s, through
    # its finally (it shares this deployment: a stack of its own costs 20 s)
    seen = app.tasks["soft_looped"].delay(10.0).get(timeout=30)
    assert seen["finally_ran"] is True
    # (the limit counts from the run's start, a little before the body's: 0.89 s
    # was seen on a loaded machine, so the lower bound only guards against far too early)
    assert 0.5 <= seen["raised_after"] < 1.2
    # The records themselves, read straight from the table
    table = boto3.client("dynamodb")
    item = table.get_item(TableName=app.result_table_name(), Key={"task_id": {"S": results[0].id}})["Item"]
    assert item["state"]["S"] == "SUCCESS"
    assert item["value_json"]["S"] == "1"


def test_a_batch_with_one_failing_record_redelivers_only_that_record(
    lambda_app: LambdaFactory, e2e_env: dict[str, str]
) -> None:
    # Given one batch: four records that succeed and one that asks to be retried in 4 s
    app = lambda_app()
    tags = [f"ok-{i}" for i in range(4)]
    retried = str(uuid.uuid4())
    _send_batch(
        app, "default", [_body("record", tag) for tag in tags] + [_body("retry_once", 4, task_id=retried)]
    )
    # When the trigger has run it
    assert _wait(lambda: sorted(side_effects(e2e_env, "record")) == tags)
    # Then the four were deleted and only the failing record is left, hidden for its retry delay
    assert _wait(lambda: _counts(app, "default") == (0, 1), timeout=5)
    assert app.AsyncResult(retried).state is State.RETRY
    # And it alone comes back, and succeeds on its second attempt
    assert app.AsyncResult(retried).get(timeout=30) == 2
    assert _wait(lambda: _counts(app, "default") == (0, 0), timeout=5)
    assert sorted(side_effects(e2e_env, "record")) == tags


def test_a_poison_record_is_dead_lettered_and_the_rest_of_its_batch_succeeds(
    lambda_app: LambdaFactory, e2e_env: dict[str, str]
) -> None:
    app = lambda_app()
    tags = [f"ok-{i}" for i in range(3)]
    _send_batch(
        app,
        "default",
        [_body("record", tags[0]), "this is not json", *(_body("record", t) for t in tags[1:])],
    )
    assert _wait(lambda: sorted(side_effects(e2e_env, "record")) == tags)
    assert _wait(lambda: app.transport.stats("default-dlq").visible == 1)
    [dead] = list_dead_letters(app, "default")
    assert dead.body == "this is not json"
    assert "DecodeError" in dead.reason
    assert _wait(lambda: _counts(app, "default") == (0, 0), timeout=5)


def test_an_invocation_past_its_timeout_is_killed_and_its_messages_come_back(
    lambda_app: LambdaFactory, e2e_env: dict[str, str]
) -> None:
    # Given a function timeout of 3 s and a queue visibility timeout of 5 s
    app = lambda_app(timeout=3, visibility=5)
    task_id = str(uuid.uuid4())
    # When a task runs far past the function timeout
    app.tasks["sleep"].apply_async((60, task_id), task_id=task_id)
    assert _wait(lambda: side_effects(e2e_env, "sleep") == [task_id], timeout=30)
    started = time.monotonic()
    # Then the invocation is killed, the message comes back after the visibility timeout and
    # runs again (in a fresh execution environment)
    assert _wait(lambda: len(side_effects(e2e_env, "sleep")) >= 2, timeout=20)
    assert time.monotonic() - started >= 4
    # And the task never completed: it was cut off each time
    assert app.AsyncResult(task_id).state in (State.STARTED, State.PENDING, State.RETRY)


def test_fifo_order_holds_across_a_failure(lambda_app: LambdaFactory, e2e_env: dict[str, str]) -> None:
    # Given one group of five ordered tasks, the second failing its first run
    app = lambda_app(queues="orders.fifo")
    bodies = [_body("ordered", f"m{i}", i == 1) for i in range(5)]
    group = f"g-{uuid.uuid4().hex[:6]}"
    for body in bodies:  # one by one: FIFO order is send order
        _send_batch(app, "orders.fifo", [body], group_id=group)
    # When the trigger runs them
    assert _wait(lambda: len(side_effects(e2e_env, "ordered")) == 6, timeout=60)
    # Then nothing after the failure ran before its retry succeeded
    assert side_effects(e2e_env, "ordered") == ["m0#1", "m1#1", "m1#2", "m2#1", "m3#1", "m4#1"]


def test_the_mappings_maximum_concurrency_limits_parallel_invocations(lambda_app: LambdaFactory) -> None:
    # Given batches of one record and a maximum concurrency of 2
    app = lambda_app(batch_size=1, concurrency=2)
    # When six 1 s tasks are queued at once
    started = time.monotonic()
    results = [app.tasks["pid"].delay(1.0) for _ in range(6)]
    pids = {result.get(timeout=60) for result in results}
    elapsed = time.monotonic() - started
    # Then at most two ran at a time: two execution environments, three rounds
    assert len(pids) <= 2
    assert elapsed >= 3


def test_a_function_timeout_above_the_queue_visibility_is_refused(lambda_app: LambdaFactory) -> None:
    from cloudq import ConfigurationError

    with pytest.raises(
        ConfigurationError, match="visibility timeout 2s is less than the function timeout 3s"
    ):
        lambda_app(timeout=3, visibility=2)


def test_a_visibility_under_six_times_the_timeout_is_a_warning(
    lambda_app: LambdaFactory, ministack_server: Any
) -> None:
    from cloudq.infra import app_resources
    from cloudq_emulator.provision import provision
    from tests.e2e.conftest import with_visibility

    app = lambda_app(timeout=3, visibility=10)
    resources = with_visibility(app_resources(app, "tests.tasks:app"), 10)
    deployment = provision(resources, endpoint_url=ministack_server.endpoint_url)
    assert deployment.warnings == [
        f"queue {app.physical_queue_name('default')}: visibility timeout 10s is under 6x the function "
        "timeout 3s; AWS advises at least 18s so a retried batch does not overlap a running one"
    ]


def test_a_task_failing_every_time_ends_in_the_dlq_and_get_raises(lambda_app: LambdaFactory) -> None:
    app = lambda_app()
    result = app.tasks["always_fails"].delay("lambda")
    with pytest.raises(TaskError, match="failing on purpose lambda"):
        result.get(timeout=30)
    assert _wait(lambda: app.transport.stats("default-dlq").visible == 1)
