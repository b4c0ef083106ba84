"""Dead-letter tools: list with reasons (nothing consumed), replay onto the source queue."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudq import CloudQ, State
from cloudq.ops.dead_letters import list_dead_letters, replay_dead_letters
from cloudq.runtime.executor import Executor
from cloudq.runtime.outcome import Action, apply_outcome
from cloudq.testing import drain
from cloudq.transports import OutgoingMessage
from tests.redrive import dead_letter_with_a_duplicate, move_back_as_aws_does


@pytest.fixture
def failed(app: CloudQ) -> CloudQ:
    """Given one poison body and one final task failure in the default DLQ."""
    app.transport.send("default", [OutgoingMessage("garbage")])
    app.tasks["not_retried"].apply_async(task_id="failed-1")
    drain(app, raise_failures=False)
    return app


def test_list_shows_reasons_and_consumes_nothing(failed: CloudQ) -> None:
    letters = sorted(list_dead_letters(failed, "default"), key=lambda letter: letter.body)
    assert [letter.task_id for letter in letters] == [None, "failed-1"]
    assert letters[0].reason.startswith("DecodeError")
    assert letters[1].reason.startswith("KeyError")
    assert {letter.source_queue for letter in letters} == {"default"}
    assert failed.transport.stats("default-dlq").visible == 2  # still there


def test_replay_by_task_id_sends_only_that_message_back_and_it_runs(failed: CloudQ) -> None:
    replayed = replay_dead_letters(failed, "default", ["failed-1"])
    assert [letter.task_id for letter in replayed] == ["failed-1"]
    assert failed.transport.stats("default-dlq").visible == 1  # the garbage stays
    assert failed.transport.stats("default").visible == 1
    drain(failed, raise_failures=False)
    assert failed.AsyncResult("failed-1").state is State.FAILURE  # it ran (and failed) again
    assert failed.transport.stats("default-dlq").visible == 2


def test_replay_all(failed: CloudQ) -> None:
    assert len(replay_dead_letters(failed, "default")) == 2
    assert failed.transport.stats("default-dlq").visible == 0


def test_a_task_moved_back_by_the_broker_starts_a_new_life_with_its_whole_budget(
    app: CloudQ, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDQ_TEST_LOG_DIR", str(tmp_path))
    # Given a task that failed 3 times (max_retries=2) and was dead-lettered
    result = app.tasks["always_fails"].apply_async(["moved"], task_id="moved-1")
    drain(app, raise_failures=False)
    # When the dead letter is moved back as the SQS console's redrive does, and the queue drains
    [moved_id] = move_back_as_aws_does(app)
    drain(app, raise_failures=False)
    # Then it ran 3 more times (its whole budget) and failed with its own error again
    assert (tmp_path / "always_fails").read_text().splitlines() == ["moved"] * 6
    record = result.record()
    assert record is not None and record.state is State.FAILURE and record.attempts == 6
    assert record.error_type == "FlakyError"
    # and the first life's final error is in its history, as after a `cloudq dlq replay`
    assert record.history is not None and len(record.history) == 1
    assert "FlakyError: failing on purpose moved" in record.history[0]
    assert "after 3 attempt(s)" in record.history[0]
    [letter] = list_dead_letters(app, "default")
    assert letter.task_id == "moved-1" and letter.message_id != moved_id


def test_a_duplicate_delivery_of_the_dead_lettered_original_is_not_a_new_life(
    app: CloudQ, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDQ_TEST_LOG_DIR", str(tmp_path))
    # Given a task dead-lettered after 3 attempts, whose message was delivered once more
    result = app.tasks["always_fails"].apply_async(["dup"], task_id="dup-1")
    executor = Executor(app)
    duplicate = dead_letter_with_a_duplicate(app, executor, attempts=3)
    # When the duplicate delivery is executed
    outcome = executor.execute(duplicate)
    apply_outcome(app.transport, duplicate, outcome)
    # Then the task did not run again, and no new life began: the message is dead-lettered
    assert (tmp_path / "always_fails").read_text().splitlines() == ["dup"] * 3
    assert outcome.action is Action.DEAD_LETTER and outcome.attempt == 3
    record = result.record()
    assert record is not None and record.state is State.FAILURE and not record.history
    assert app.transport.stats("default").visible == 0


def test_a_forged_dead_letter_note_naming_another_queue_is_not_a_return(
    app: CloudQ, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDQ_TEST_LOG_DIR", str(tmp_path))
    # Given a task dead-lettered from queue "default", whose copy is then sent back with its
    # note changed to name another queue (anyone may send any attribute)
    app.tasks["always_fails"].apply_async(["forged"], task_id="forged-1")
    drain(app, raise_failures=False)
    transport = app.transport
    [letter] = transport.receive("default-dlq", 1, wait_seconds=0, visibility_timeout=30)
    forged = {**letter.attributes, "cloudq-dead-letter": '{"reason": "x", "source_queue": "elsewhere"}'}
    transport.send("default", [OutgoingMessage(letter.body, attributes=forged)])
    transport.ack("default-dlq", [letter.receipt_handle])
    # When it is executed
    [received] = transport.receive("default", 1, wait_seconds=0, visibility_timeout=30)
    outcome = Executor(app).execute(received)
    # Then it is not re-sent as a new life: its spent budget stands, and it did not run again
    assert outcome.action is Action.DEAD_LETTER
    assert (tmp_path / "always_fails").read_text().splitlines() == ["forged"] * 3
