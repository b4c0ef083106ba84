"""Dead-letter replay and id-less messages, with a real ``cloudq worker`` process, on SQS +
DynamoDB in the emulator and on Redis: what ran is counted by the tasks' side effects."""

from __future__ import annotations

import json
import subprocess
import sys

from cloudq import CloudQ, State
from cloudq.ops.dead_letters import list_dead_letters
from cloudq.runtime.executor import Executor
from cloudq.runtime.outcome import Action, apply_outcome
from cloudq.transports import OutgoingMessage
from tests.e2e.conftest import WorkerFactory, side_effects
from tests.processes import wait_until
from tests.redrive import dead_letter_with_a_duplicate, move_back_as_aws_does


def _cloudq(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "cloudq", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def _dead_letter_count(app: CloudQ, queue: str = "default") -> int:
    return len(list_dead_letters(app, queue))


def test_a_replayed_task_that_used_up_its_retries_runs_again_with_a_fresh_budget(
    engine_app: CloudQ, start_worker: WorkerFactory, e2e_env: dict[str, str]
) -> None:
    # Given a task that failed 3 times (max_retries=2) and was dead-lettered
    start_worker("-c", "2")
    result = engine_app.tasks["always_fails"].apply_async(["first"], task_id="replay-me")
    assert wait_until(lambda: result.state is State.FAILURE and _dead_letter_count(engine_app) == 1, 60)
    assert side_effects(e2e_env, "always_fails") == ["first"] * 3
    # When it is replayed with the CLI, as an operator would
    replay = _cloudq(e2e_env, "dlq", "replay", "default", "--app", "tests.tasks:app")
    assert replay.returncode == 0, replay.stderr
    # Then it ran 3 more times (a fresh retry budget), and failed with its own error again
    assert wait_until(lambda: len(side_effects(e2e_env, "always_fails")) == 6, 60)
    assert wait_until(lambda: _dead_letter_count(engine_app) == 1, 30)
    record = result.record()
    assert record is not None and record.state is State.FAILURE
    assert record.error_type == "FlakyError" and "failing on purpose first" in (record.error_message or "")
    assert record.attempts == 6  # every run of the task id, both lives
    # and the first life's final error is kept in the record's history
    assert record.history is not None and len(record.history) == 1
    assert "FlakyError: failing on purpose first" in record.history[0]
    assert "after 3 attempt(s)" in record.history[0]


def test_a_task_moved_back_as_the_sqs_console_redrives_it_runs_again_with_its_whole_budget(
    engine_app: CloudQ, start_worker: WorkerFactory, e2e_env: dict[str, str]
) -> None:
    # Given a task that failed 3 times (max_retries=2) and was dead-lettered
    start_worker("-c", "2")
    result = engine_app.tasks["always_fails"].apply_async(["moved"], task_id="redrive-me")
    assert wait_until(lambda: result.state is State.FAILURE and _dead_letter_count(engine_app) == 1, 60)
    assert side_effects(e2e_env, "always_fails") == ["moved"] * 3
    # When it is moved back as AWS moves it (same body and attributes, a new message id)
    assert len(move_back_as_aws_does(engine_app)) == 1
    # Then it ran 3 more times (its whole budget), and failed with its own error again
    assert wait_until(lambda: len(side_effects(e2e_env, "always_fails")) == 6, 30)
    assert wait_until(lambda: _dead_letter_count(engine_app) == 1, 30)
    record = result.record()
    assert record is not None and record.state is State.FAILURE and record.attempts == 6
    assert record.error_type == "FlakyError" and "failing on purpose moved" in (record.error_message or "")
    # and its history shows the earlier life, as after `cloudq dlq replay`
    assert record.history is not None and len(record.history) == 1
    assert "FlakyError: failing on purpose moved" in record.history[0]
    assert "after 3 attempt(s)" in record.history[0]


def test_a_duplicate_delivery_of_a_dead_lettered_message_does_not_start_a_new_life(
    engine_app: CloudQ, e2e_env: dict[str, str]
) -> None:
    # Given a task dead-lettered after 3 attempts whose message the broker delivered once more
    # (its last visibility ran out before the dead-lettering was applied)
    result = engine_app.tasks["always_fails"].apply_async(["dup"], task_id="duplicate-me")
    executor = Executor(engine_app)
    duplicate = dead_letter_with_a_duplicate(engine_app, executor, attempts=3)
    # When the duplicate delivery is executed
    outcome = executor.execute(duplicate)
    apply_outcome(engine_app.transport, duplicate, outcome)
    # Then the task did not run again and no new life began: the message is dead-lettered
    assert side_effects(e2e_env, "always_fails") == ["dup"] * 3
    assert outcome.action is Action.DEAD_LETTER and outcome.attempt == 3
    record = result.record()
    assert record is not None and record.state is State.FAILURE and not record.history
    assert engine_app.transport.receive("default", 10, wait_seconds=0) == []


def test_a_fifo_replay_soon_after_the_original_send_is_not_deduplicated(
    engine_app: CloudQ, start_worker: WorkerFactory, e2e_env: dict[str, str]
) -> None:
    # Given a FIFO message that was dead-lettered right after it was sent (as by a worker
    # that could not run it)
    queue = "orders.fifo"
    result = engine_app.tasks["ordered"].delay("again")
    [received] = engine_app.transport.receive(queue, 1, wait_seconds=5)
    engine_app.transport.dead_letter(received, "RuntimeError: could not run")
    # When it is replayed within SQS's 5-minute deduplication window, and a worker runs
    replay = _cloudq(e2e_env, "dlq", "replay", queue, "--app", "tests.tasks:app")
    assert replay.returncode == 0, replay.stderr
    start_worker("-Q", queue)
    # Then the task ran
    assert result.get(timeout=30) == "again"
    assert side_effects(e2e_env, "ordered") == ["again#1"]


def test_a_message_without_an_id_has_one_stable_task_id_its_broker_message_id(
    engine_app: CloudQ, start_worker: WorkerFactory, e2e_env: dict[str, str]
) -> None:
    # Given hand-written bodies without an id (a scheduler sends such fixed bodies)
    [ok] = engine_app.transport.send(
        "default", [OutgoingMessage(json.dumps({"task": "record", "args": ["x"]}))]
    )
    failing = OutgoingMessage(json.dumps({"task": "always_fails", "args": ["no-id"]}))
    [failed] = engine_app.transport.send("default", [failing])
    ok_id, failing_id = str(ok.message_id), str(failed.message_id)
    # When a worker runs them
    start_worker("-c", "2")
    # Then each one's result is under its broker message id
    assert engine_app.AsyncResult(ok_id).get(timeout=30) == "x"
    # and the failing one used its retry budget once (3 runs, max_retries=2), then was
    # dead-lettered with its reason, leaving one record
    assert wait_until(lambda: _dead_letter_count(engine_app) == 1, 60)
    assert side_effects(e2e_env, "always_fails") == ["no-id"] * 3
    record = engine_app.AsyncResult(failing_id).record()
    assert record is not None and record.state is State.FAILURE and record.attempts == 3
    [letter] = list_dead_letters(engine_app, "default")
    assert letter.reason.startswith("FlakyError")
