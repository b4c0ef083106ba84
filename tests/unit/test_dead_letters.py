"""Dead-letter tools: list with reasons (nothing consumed), replay onto the source queue."""

from __future__ import annotations

import pytest

from cloudq import CloudQ, State
from cloudq.dead_letters import list_dead_letters, replay_dead_letters
from cloudq.testing import drain
from cloudq.transports import OutgoingMessage


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
