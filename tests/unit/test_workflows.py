"""Workflows on the in-process engines: batch sending, chain, group, chord, revoke, and the
envelope version they are written with."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from cloudq import (
    ArgumentError,
    CloudQ,
    ConfigurationError,
    Message,
    PartialSendError,
    State,
    TaskError,
    TaskRevokedError,
    chain,
    chord,
    group,
)
from cloudq.core.errors import DecodeError
from cloudq.runtime.executor import Executor
from cloudq.testing import drain
from cloudq.transports.base import SendResult
from cloudq.transports.memory import MemoryTransport
from tests.tasks import make_app


def _bodies(app: CloudQ, queue: str = "default") -> list[dict[str, Any]]:
    got = app.transport.receive(queue, 10, wait_seconds=0)
    for message in got:
        app.transport.change_visibility(queue, message.receipt_handle, 0)
    return [json.loads(message.body) for message in got]


def test_map_sends_every_call_and_each_runs(app: CloudQ) -> None:
    # Given 25 argument tuples, When mapped over a task
    results = app.tasks["add"].map((i, i) for i in range(25))
    drain(app)
    # Then every call ran, with its own result
    assert [result.get(timeout=1) for result in results] == [2 * i for i in range(25)]


def test_map_checks_every_call_before_sending_any(app: CloudQ) -> None:
    with pytest.raises(ArgumentError, match="missing a required argument"):
        app.tasks["add"].map([(1, 2), (3,)])
    assert app.transport.stats("default").visible == 0


def test_a_message_without_workflow_fields_stays_version_1_and_a_chain_link_is_version_5(app: CloudQ) -> None:
    app.tasks["add"].delay(1, 2)
    chain(app.tasks["add"].s(1, 2), app.tasks["add"].s(3)).delay()
    versions = sorted(body["v"] for body in _bodies(app))
    assert versions == [1, 5]


def test_a_worker_that_reads_only_versions_1_and_2_refuses_a_chain_instead_of_dropping_its_links(
    app: CloudQ, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a chain's first message (version 5), and a worker of a cloudq before workflows
    chain(app.tasks["record"].si("first"), app.tasks["record"].si("second")).delay()
    monkeypatch.setattr("cloudq.core.message.SUPPORTED_VERSIONS", (1, 2))
    # When it drains the queue
    drain(app, raise_failures=False)
    # Then the message is dead-lettered with the reason, and nothing of the chain ran
    [dead] = app.transport.receive("default-dlq", 10, wait_seconds=0)
    assert "unsupported envelope version 5" in dead.attributes["cloudq-dead-letter"]
    assert app.transport.stats("default").visible == 0


def test_a_version_1_message_with_callbacks_is_refused() -> None:
    body = Message(task="add", args=[1, 2], callbacks=[{"id": "next", "task": "add", "args": [3]}]).encode(
        10**6
    )
    old = json.loads(body) | {"v": 1}
    with pytest.raises(DecodeError, match="version 5"):
        Message.decode(json.dumps(old))


def test_a_chain_passes_each_result_on(app: CloudQ) -> None:
    add = app.tasks["add"]
    result = chain(add.s(1, 2), add.s(10), add.s(100)).delay()
    drain(app)
    assert result.get(timeout=1) == 113
    assert result.parent is not None and result.parent.get(timeout=1) == 13


def test_a_failure_stops_the_chain_and_shows_on_its_handle(app: CloudQ) -> None:
    result = (
        app.tasks["always_fails"].si("x") | app.tasks["record"].si("never") | app.tasks["echo"].s()
    ).delay()
    drain(app, raise_failures=False)
    with pytest.raises(TaskError, match="FlakyError") as caught:
        result.get(timeout=1)
    assert "failed" in caught.value.error_message
    assert app.AsyncResult(result.parent.id).state is State.FAILURE  # type: ignore[union-attr]


def test_a_signature_that_does_not_fit_is_refused_at_creation(app: CloudQ) -> None:
    add = app.tasks["add"]
    with pytest.raises(ArgumentError):
        add.s(1, 2, 3)
    with pytest.raises(ArgumentError):
        add.si(1)
    with pytest.raises(ArgumentError):
        add.s(c=1)
    with pytest.raises(ArgumentError):  # a link after the first gets one more argument: 3 in all
        chain(add.s(1, 2), add.s(3, 4))
    with pytest.raises(ArgumentError):  # a group member gets none
        group(add.s(1))
    with pytest.raises(ArgumentError):
        add.s(object())


def test_a_group_runs_every_member(app: CloudQ) -> None:
    result = group(app.tasks["add"].s(i, 1) for i in range(30)).delay()
    assert not result.ready() and result.completed_count() == 0
    drain(app)
    assert result.ready() and result.completed_count() == 30
    assert result.get(timeout=1) == [i + 1 for i in range(30)]


def test_a_chord_callback_gets_every_result_once(app: CloudQ) -> None:
    result = chord((app.tasks["add"].s(i, i) for i in range(12)), app.tasks["total"].s(offset=1)).delay()
    drain(app)
    assert result.get(timeout=1) == sum(2 * i for i in range(12)) + 1


def test_a_chord_member_delivered_again_after_it_was_counted_does_not_fire_the_callback_again() -> None:
    # Given a chord whose members ran, but one member's message is delivered again afterwards
    # (its delete was lost): the memory broker keeps it by not acknowledging one delivery
    app = make_app("wf", broker="memory://", backend="memory://")
    result = chord([app.tasks["add"].s(i, i) for i in range(3)], app.tasks["total"].s()).delay()
    executor = Executor(app)
    received = app.transport.receive("default", 10, wait_seconds=0)
    for message in received:
        executor.execute(message)  # run, not acknowledged: each comes back
    app.transport.ack("default", [m.receipt_handle for m in received[1:]])
    app.transport.change_visibility("default", received[0].receipt_handle, 0)
    drain(app)
    # Then the callback ran once, with every member's result
    record = app.backend.get(result.id)  # type: ignore[union-attr]
    assert record is not None and record.value == 6 and record.attempts == 1


def test_a_failed_chord_member_fails_the_callback_with_its_error(app: CloudQ) -> None:
    members = [app.tasks["add"].s(1, 1), app.tasks["fails_loudly"].s(3)]
    result = chord(members, app.tasks["total"].s()).delay()
    drain(app, raise_failures=False)
    with pytest.raises(TaskError, match="ValueError"):
        result.get(timeout=1)


def test_a_chord_needs_a_result_backend_at_creation() -> None:
    app = make_app("nores", broker="memory://", backend=None)
    with pytest.raises(ConfigurationError, match="result backend"):
        chord([app.tasks["add"].s(1, 1)], app.tasks["total"].s())


def test_a_revoked_task_is_acknowledged_without_running(app: CloudQ) -> None:
    result = app.tasks["record"].delay("revoked")
    assert result.revoke()
    assert drain(app) == 1
    assert app.transport.stats("default").visible == 0
    with pytest.raises(TaskRevokedError):
        result.get(timeout=1)
    assert result.state is State.REVOKED


def test_a_finished_task_is_not_revoked(app: CloudQ) -> None:
    result = app.tasks["add"].delay(1, 1)
    drain(app)
    assert not result.revoke()
    assert result.get(timeout=1) == 2


def test_revoke_needs_a_result_backend() -> None:
    app = make_app("nores", broker="memory://", backend=None)
    with pytest.raises(ConfigurationError, match="results turned off"):
        app.tasks["add"].delay(1, 1).revoke()


def test_message_group_and_deduplication_ids_are_sent(app: CloudQ) -> None:
    app.tasks["ordered"].apply_async(("a",), message_group_id="customer-1", deduplication_id="d-1")
    app.tasks["add"].apply_async((1, 2), message_group_id="tenant-7")
    [fifo] = app.transport.receive("orders.fifo", 10, wait_seconds=0)
    [standard] = app.transport.receive("default", 10, wait_seconds=0)
    assert (fifo.group_id, standard.group_id) == ("customer-1", "tenant-7")


class RefusingTransport(MemoryTransport):
    """Refuses every third message of a send (as SQS may refuse single batch entries)."""

    def send(self, queue: str, messages: Any) -> list[SendResult]:
        results = []
        for index, message in enumerate(messages):
            if index % 3 == 2:
                results.append(SendResult(error="InternalError: refused"))
            else:
                results += super().send(queue, [message])
        return results


def test_a_partial_batch_failure_names_every_task_not_sent() -> None:
    app = make_app("partial", transport=RefusingTransport(), backend="memory://")
    with pytest.raises(PartialSendError) as caught:
        app.tasks["add"].map((i, i) for i in range(9))
    assert [index for index, _ in caught.value.failed] == [2, 5, 8]
    assert len(caught.value.sent) == 6 and app.transport.stats("default").visible == 6


def test_the_lambda_handler_runs_a_chain_and_acknowledges_a_revoked_task(app: CloudQ) -> None:
    from cloudq.testing import sqs_event

    # Given a revoked task and a chain, handled as SQS events
    revoked = app.tasks["echo_logged"].delay("never")
    revoked.revoke()
    result = chain(app.tasks["add"].s(1, 2), app.tasks["add"].s(3)).delay()
    for _ in range(3):  # the revoked task and the first link, then the second link
        response = app.lambda_handler(sqs_event(app))
        assert response == {"batchItemFailures": []}
    # Then the chain ran through, and the revoked task's record was deleted without running
    assert result.get(timeout=1) == 6
    assert revoked.state is State.REVOKED
    assert app.transport.stats("default").visible == 0


def test_a_fifo_groups_waiting_messages_are_kept_invisible_and_run_once_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cloudq.worker import Worker
    from tests.unit.test_worker import running

    # Given one message group of three 0.7 s tasks received together, and a 1 s visibility
    monkeypatch.setenv("CLOUDQ_TEST_LOG_DIR", str(tmp_path))
    app = make_app("fifo", broker="memory://", backend="memory://")
    results = app.tasks["timed"].map([("g", index, 0.7) for index in range(3)], message_group_id="g")
    # When a worker with 8 threads runs them (the third waits 1.4 s for the two before it)
    with running(Worker(app, ["orders.fifo"], concurrency=8, visibility_timeout=1, wait_seconds=0.1)):
        assert [result.get(timeout=10) for result in results] == [0, 1, 2]
        time.sleep(0.5)
    # Then each ran once, one after the other, in order
    runs = [line.split() for line in (tmp_path / "timed").read_text().splitlines()]
    assert [int(run[1]) for run in runs] == [0, 1, 2]
    assert all(float(a[3]) <= float(b[2]) for a, b in zip(runs, runs[1:], strict=False))
