"""The executor: every kind of message ends in exactly one outcome, and nothing is lost."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cloudq import CloudQ, Message, State, TaskError
from cloudq.core.clock import ManualClock
from cloudq.runtime.executor import Executor
from cloudq.runtime.outcome import Action, apply_outcome
from cloudq.testing import drain
from cloudq.transports import OutgoingMessage
from cloudq.transports.base import DeadLetterNote
from tests.tasks import make_app


def _send_raw(app: CloudQ, body: str, queue: str = "default") -> None:
    app.transport.send(queue, [OutgoingMessage(body)])


def _dead_letters(app: CloudQ, queue: str = "default") -> list[DeadLetterNote]:
    got = app.transport.receive(f"{queue}-dlq", 10, wait_seconds=0)
    notes = [DeadLetterNote.from_attributes(message.attributes) for message in got]
    assert None not in notes, "a dead letter without cloudq's note"
    return [note for note in notes if note is not None]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json at all", "DecodeError"),
        ('{"task": "add", "args": "nope"}', "DecodeError"),
        ('["a", "list"]', "DecodeError"),
        ('{"task": "add", "v": 99}', "unsupported envelope version"),
        ('{"task": "no.such.task"}', "unknown task 'no.such.task'"),
        ('{"task": "add", "args": [1]}', "ArgumentError"),
        ('{"task": "add", "args": ["x", 1]}', "ArgumentError"),
        ('{"task": "add", "args": [1, 1], "id": ""}', "id: String should have at least 1 character"),
        ('{"task": "add", "args": [1, 1], "eta": NaN}', "eta: Input should be a finite number"),
        ('{"task": "add", "args": [1, 1], "expires": Infinity}', "expires: Input should be a finite number"),
        (
            '{"task": "add", "args": [1, 1], "retries": -1}',
            "retries: Input should be greater than or equal to 0",
        ),
        ('{"task": "add", "args": [1, 1], "id": "%s"}' % ("x" * 256), "id: String should have at most 255"),
    ],
)
def test_bad_messages_go_to_the_dlq_with_a_reason_and_the_next_task_runs(
    app: CloudQ, body: str, reason: str
) -> None:
    # Given a bad message followed by a good task
    _send_raw(app, body)
    good = app.tasks["add"].delay(1, 1)
    # When the queue is drained
    drain(app, raise_failures=False)
    # Then the bad one is in the DLQ with a reason, and the good one ran
    [note] = _dead_letters(app)
    assert reason in note.reason
    assert note.source_queue == "default"
    assert good.get(timeout=1) == 2


def test_a_task_failing_every_time_runs_max_retries_plus_one_times_then_dead_letters(
    app: CloudQ, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDQ_TEST_LOG_DIR", str(tmp_path))
    result = app.tasks["always_fails"].delay("t1")  # max_retries=2
    with pytest.raises(TaskError, match="gave up after 3 attempts"):
        drain(app)
    assert (tmp_path / "always_fails").read_text().splitlines() == ["t1"] * 3
    with pytest.raises(TaskError) as raised:
        result.get(timeout=1)
    assert raised.value.error_type == "FlakyError"
    assert "failing on purpose t1" in raised.value.error_message
    assert "Traceback" in raised.value.traceback
    assert result.record().attempts == 3  # type: ignore[union-attr]
    [note] = _dead_letters(app)
    assert "FlakyError" in note.reason


def test_an_exception_outside_autoretry_for_fails_at_once(app: CloudQ) -> None:
    result = app.tasks["not_retried"].delay()
    drain(app, raise_failures=False)
    assert result.record().attempts == 1  # type: ignore[union-attr]
    assert result.state is State.FAILURE
    assert len(_dead_letters(app)) == 1


def test_self_retry_runs_again_and_knows_its_attempt(app: CloudQ) -> None:
    result = app.tasks["retry_once"].delay()
    drain(app)
    assert result.get(timeout=1) == 2


def test_a_retry_keeps_the_same_message_and_delays_it_by_its_countdown(app: CloudQ) -> None:
    # Given a task that asks to retry in 60 s
    app.tasks["retry_once"].delay(60)
    [received] = app.transport.receive("default", 1, wait_seconds=0)
    # When executed
    outcome = Executor(app).execute(received)
    # Then the outcome is a visibility change of the same message, and the state RETRY
    assert (outcome.action, outcome.delay_seconds) == (Action.RETRY, 60)
    assert Message.decode(received.body).retries == 0


def test_a_retry_longer_than_the_broker_delay_is_resent_with_an_eta(app: CloudQ) -> None:
    app.tasks["retry_once"].delay(3600)
    [received] = app.transport.receive("default", 1, wait_seconds=0)
    outcome = Executor(app).execute(received)
    assert outcome.action is Action.RESEND
    assert outcome.delay_seconds == 900
    resent = Message.decode(outcome.body or "")
    assert resent.retries == 1  # the attempt made is carried over
    assert resent.eta is not None and resent.eta > time.time() + 3500


def test_a_message_before_its_eta_hops_and_the_hop_is_not_an_attempt(app: CloudQ) -> None:
    app.tasks["add"].apply_async((1, 2), eta=time.time() + 7200)
    stats = app.transport.stats("default")
    assert stats.delayed == 1
    # Simulate the broker delay running out: receive it now with a fresh executor.
    message = Message(task="add", args=[1, 2], eta=time.time() + 7200)
    app.transport.send("other", [OutgoingMessage(message.encode(10**6))])
    [received] = app.transport.receive("other", 1, wait_seconds=0)
    outcome = Executor(app).execute(received)
    assert (outcome.action, outcome.delay_seconds) == (Action.RESEND, 900)
    assert Message.decode(outcome.body or "").retries == 0
    assert app.AsyncResult(message.id).state is State.PENDING  # it did not run


def test_a_countdown_of_a_fraction_of_a_second_is_sent_delayed_a_whole_second(app: CloudQ) -> None:
    # Given a countdown of 0.3 s (broker delays are whole seconds)
    app.tasks["add"].apply_async((1, 2), countdown=0.3)
    # Then the message is sent delayed (rounded up to 1 s), not visible at once
    stats = app.transport.stats("default")
    assert (stats.visible, stats.delayed) == (0, 1)


def test_a_message_a_fraction_of_a_second_before_its_eta_hops_a_whole_second(app: CloudQ) -> None:
    # Given a message received 0.3 s before its eta
    message = Message(task="add", args=[1, 2], eta=time.time() + 0.3)
    app.transport.send("default", [OutgoingMessage(message.encode(10**6))])
    [received] = app.transport.receive("default", 1, wait_seconds=0)
    # When executed
    outcome = Executor(app).execute(received)
    # Then it does not run early: it is re-sent for the rest, rounded up, and no attempt counts
    assert (outcome.action, outcome.delay_seconds) == (Action.RESEND, 1)
    assert Message.decode(outcome.body or "").retries == 0
    assert app.AsyncResult(message.id).state is State.PENDING


def test_an_expired_task_is_dead_lettered_not_run(app: CloudQ) -> None:
    result = app.tasks["add"].apply_async((1, 2), expires=time.time() - 1)
    drain(app, raise_failures=False)
    assert result.state is State.FAILURE
    assert "Expired" in _dead_letters(app)[0].reason


def test_a_redelivered_message_of_a_succeeded_task_is_acked_without_running(
    app: CloudQ, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDQ_TEST_LOG_DIR", str(tmp_path))
    # Given the same task id delivered twice (SQS is at-least-once)
    app.tasks["record"].apply_async(("once",), task_id="dup-1")
    app.tasks["record"].apply_async(("once",), task_id="dup-1")
    # When both are processed
    drain(app)
    # Then the side effect happened once
    assert (tmp_path / "record").read_text().splitlines() == ["once"]


def test_a_task_leased_by_another_worker_is_not_run_but_retried_later(app: CloudQ) -> None:
    backend = app.backend
    assert backend is not None
    backend.claim("busy-1", "add", "other-worker", 120, time.time())
    app.tasks["add"].apply_async((1, 2), task_id="busy-1")
    [received] = app.transport.receive("default", 1, wait_seconds=0)
    outcome = Executor(app).execute(received)
    assert outcome.action is Action.RETRY
    assert 100 < outcome.delay_seconds <= 120


def test_a_result_that_is_not_json_is_a_failure(app: CloudQ) -> None:
    result = app.tasks["returns_object"].delay()
    drain(app, raise_failures=False)
    with pytest.raises(TaskError, match="cannot be stored as JSON"):
        result.get(timeout=1)


def test_without_a_backend_tasks_still_run_and_results_are_off() -> None:
    app = make_app("nobackend", broker="memory://", backend=None)
    result = app.tasks["add"].delay(1, 2)
    assert drain(app) == 1
    with pytest.raises(Exception, match="results turned off"):
        result.get(timeout=1)


def _keys(text: str) -> tuple[str, ...]:
    return tuple(key for key in text.split(",") if key)


class TestSigning:
    def _pair(self, sender_keys: str, worker_keys: str) -> tuple[CloudQ, CloudQ]:
        from cloudq.transports.memory import MemoryTransport

        shared = MemoryTransport()
        sender = make_app("signed", transport=shared, backend=None, signing_keys=_keys(sender_keys))
        worker = make_app("signed", transport=shared, backend="memory://", signing_keys=_keys(worker_keys))
        return sender, worker

    def test_a_signed_message_runs(self) -> None:
        sender, worker = self._pair("k1", "k1")
        result = sender.tasks["add"].delay(1, 2)
        drain(worker)
        assert worker.AsyncResult(result.id).get(timeout=1) == 3

    def test_rotation_accepts_any_configured_key(self) -> None:
        sender, worker = self._pair("old", "new,old")
        result = sender.tasks["add"].delay(1, 2)
        drain(worker)
        assert worker.AsyncResult(result.id).get(timeout=1) == 3

    @pytest.mark.parametrize(("sender_keys", "reason"), [("", "not signed"), ("forged", "does not match")])
    def test_unsigned_or_forged_messages_are_dead_lettered(self, sender_keys: str, reason: str) -> None:
        sender, worker = self._pair(sender_keys, "k1")
        sender.tasks["add"].delay(1, 2)
        drain(worker, raise_failures=False)
        [note] = _dead_letters(worker)
        assert reason in note.reason

    def test_a_tampered_body_fails_verification(self) -> None:
        sender, worker = self._pair("k1", "k1")
        good = Message(task="add", args=[1, 2]).signed("k1")
        tampered = good.model_copy(update={"args": [100, 2]})
        worker.transport.send("default", [OutgoingMessage(tampered.encode(10**6))])
        drain(worker, raise_failures=False)
        assert "does not match" in _dead_letters(worker)[0].reason


def test_a_redelivered_message_takes_over_the_lease_of_the_worker_that_lost_it(app: CloudQ) -> None:
    from cloudq.backends.base import Delivery

    backend = app.backend
    assert backend is not None
    # Given a worker that claimed the task for delivery 1 of a message, then died
    result = app.tasks["add"].apply_async((2, 2), task_id="orphan-1")
    [first] = app.transport.receive("default", 1, wait_seconds=0)
    backend.claim(
        "orphan-1",
        "add",
        "dead-worker",
        300,
        time.time(),
        None,
        Delivery(message_id=first.message_id, receive_count=1),
    )
    app.transport.change_visibility("default", first.receipt_handle, 0)  # its visibility ran out
    # When the broker delivers the same message again
    [again] = app.transport.receive("default", 1, wait_seconds=0)
    outcome = Executor(app).execute(again)
    # Then the lease does not block it
    assert outcome.action is Action.ACK
    assert result.get(timeout=1) == 4


def test_deliveries_handed_back_unstarted_are_not_attempts(app: CloudQ) -> None:
    # Given a task allowed 3 runs, whose message was received and handed back unstarted
    # 3 times (a worker shutting down, a Lambda deadline)
    result = app.tasks["always_fails"].delay("held")
    for _ in range(3):
        [held] = app.transport.receive("default", 1, wait_seconds=0)
        app.transport.change_visibility("default", held.receipt_handle, 0)
    # When it is received a fourth time
    [fourth] = app.transport.receive("default", 1, wait_seconds=0)
    assert fourth.receive_count == 4
    outcome = Executor(app).execute(fourth)
    # Then it runs its first attempt (and is retried), rather than giving up unrun
    assert outcome.action is Action.RETRY
    assert result.record().attempts == 1  # type: ignore[union-attr]
    assert result.state is State.RETRY


def test_a_run_cut_off_by_a_crash_is_an_attempt(app: CloudQ) -> None:
    from cloudq.backends.base import Delivery

    backend = app.backend
    assert backend is not None
    # Given a task allowed one run, claimed for delivery 1 by a worker that then died
    result = app.tasks["hang"].apply_async(task_id="crashed-1")
    [first] = app.transport.receive("default", 1, wait_seconds=0)
    delivery = Delivery(message_id=first.message_id, receive_count=1)
    backend.claim("crashed-1", "hang", "dead-worker", 300, time.time(), None, delivery)
    app.transport.change_visibility("default", first.receipt_handle, 0)
    # When the message comes back
    [again] = app.transport.receive("default", 1, wait_seconds=0)
    outcome = Executor(app).execute(again)
    # Then it is not run again: its one attempt was used
    assert outcome.action is Action.DEAD_LETTER
    with pytest.raises(TaskError, match="gave up after 1 attempts"):
        result.get(timeout=1)


def test_a_task_past_its_timeout_is_a_time_limit_failure_under_its_retry_policy() -> None:
    # Given a task with timeout=1 that runs 1.3 s and max_retries=1 (on a clock that moves
    # when the task sleeps and while drain waits for the retry)
    clock = ManualClock()
    app = make_app("overrun", broker="memory://", backend="memory://", clock=clock)
    result = app.tasks["overrun"].delay(1.3, "slow")
    # When it is drained (two attempts, both too slow)
    drain(app, raise_failures=False, timeout=30)
    # Then it failed with the time limit after its retries
    with pytest.raises(TaskError) as raised:
        result.get(timeout=1)
    assert raised.value.error_type == "TimeLimitExceeded"
    assert "over its 1 s limit" in raised.value.error_message
    assert result.record().attempts == 2  # type: ignore[union-attr]


def test_a_fifo_retry_longer_than_the_broker_delay_waits_in_place_and_is_not_resent() -> None:
    app = make_app("fifo", broker="memory://", backend="memory://", default_queue="orders.fifo")
    app.tasks["retry_once"].delay(3600)
    [received] = app.transport.receive("orders.fifo", 1, wait_seconds=0)
    outcome = Executor(app).execute(received)
    assert (outcome.action, outcome.delay_seconds) == (Action.RETRY, 900)


def test_a_result_backend_outage_is_one_line_when_it_starts_and_one_when_it_ends(
    moto_aws: object, caplog: pytest.LogCaptureFixture
) -> None:
    from cloudq.infra import app_resources
    from cloudq_emulator.provision import provision

    # Given results in a DynamoDB table that does not exist yet (the backend is "down")
    clock = ManualClock()
    app = make_app("outage", broker="memory://", backend="dynamodb://outage-results", clock=clock)
    results = [app.tasks["add"].delay(i, 1) for i in range(5)]
    executor = Executor(app)
    with caplog.at_level("WARNING", logger="cloudq.runtime.health"):
        # When every message meets the outage
        for message in app.transport.receive("default", 10, wait_seconds=0):
            outcome = executor.execute(message)
            assert outcome.action is Action.RETRY  # kept, not lost
            apply_outcome(app.transport, message, outcome)
        # And the table then appears
        provision(app_resources(app))
        assert app.transport.receive("default", 10, wait_seconds=0) == []  # kept out of sight
        clock.advance(5.1)  # the retry delay of the kept messages
        for message in app.transport.receive("default", 10, wait_seconds=0):
            apply_outcome(app.transport, message, executor.execute(message))
    # Then the outage was logged once, its end once, and no result was lost
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith("result backend (claim) failing: result table 'outage-results' does not exist")
    assert lines[1].startswith("result backend (claim) recovered after")
    assert [result.get(timeout=1) for result in results] == [1, 2, 3, 4, 5]


def test_a_result_too_large_for_dynamodb_fails_once_with_the_reason_and_is_not_retried(
    moto_aws: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cloudq.infra import app_resources
    from cloudq_emulator.provision import provision

    # Given results in DynamoDB (at most 400 KB an item) and a task returning 500 KB
    monkeypatch.setenv("CLOUDQ_TEST_LOG_DIR", str(tmp_path))
    app = make_app("large", broker="memory://", backend="dynamodb://large-results")
    provision(app_resources(app))
    big = app.tasks["echo_logged"].delay("x" * 500_000)
    small = app.tasks["add"].delay(1, 2)
    # When the queue is drained
    drain(app, raise_failures=False)
    # Then the task ran once, its result is a failure naming the limit, the message is in the
    # DLQ with that reason, and the next task's result is stored
    assert len((tmp_path / "echo_logged").read_text().splitlines()) == 1
    with pytest.raises(TaskError) as raised:
        big.get(timeout=1)
    assert raised.value.error_type == "ResultTooLargeError"
    assert "over DynamoDB's 400 KB limit; return an id instead" in raised.value.error_message
    [note] = _dead_letters(app)
    assert note.reason.startswith("ResultTooLargeError: the result of task")
    assert small.get(timeout=1) == 3


def test_a_huge_error_message_is_clipped_so_the_failure_is_still_recorded(moto_aws: object) -> None:
    from cloudq.infra import app_resources
    from cloudq_emulator.provision import provision

    app = make_app("huge-error", broker="memory://", backend="dynamodb://huge-error-results")
    provision(app_resources(app))
    result = app.tasks["fails_loudly"].delay(600_000)
    drain(app, raise_failures=False)
    with pytest.raises(TaskError) as raised:
        result.get(timeout=1)
    assert raised.value.error_type == "ValueError"
    assert raised.value.error_message.startswith("e" * 1000)
    assert "characters left out" in raised.value.error_message
    assert len(raised.value.error_message) < 20_000
    assert raised.value.traceback.startswith("Traceback (most recent call last)")
    assert 'raise ValueError("e" * length)' in raised.value.traceback  # the frames are kept
    assert "characters left out" in raised.value.traceback
    [note] = _dead_letters(app)
    assert note.reason.startswith("ValueError: eee")
    assert len(note.reason) < 1100


def test_ignore_result_runs_the_task_and_stores_no_success_but_still_records_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDQ_TEST_LOG_DIR", str(tmp_path))
    # Given tasks with ignore_result=True, one succeeding and one failing
    app = make_app("ignored", broker="memory://", backend="memory://")
    quiet = app.task(name="quiet", ignore_result=True)(lambda tag: _write(tmp_path, tag))
    failing = app.task(name="quiet_fails", ignore_result=True, max_retries=0)(_fail)
    ok = quiet.delay("ran")
    bad = failing.delay()
    # When they are processed
    drain(app, raise_failures=False)
    # Then the task ran, its success left no result, and the failure was recorded
    assert (tmp_path / "quiet").read_text().splitlines() == ["ran"]
    assert app.AsyncResult(ok.id).state is not State.SUCCESS
    with pytest.raises(TaskError, match="boom"):
        bad.get(timeout=1)


def test_deduplicate_false_skips_the_claim_so_a_redelivery_runs_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDQ_TEST_LOG_DIR", str(tmp_path))
    # Given an at-least-once task (no claim) sent twice with the same id
    app = make_app("atleastonce", broker="memory://", backend="memory://")
    twice = app.task(name="twice", deduplicate=False)(lambda tag: _write(tmp_path, tag) or tag)
    twice.apply_async(("x",), task_id="same-1")
    twice.apply_async(("x",), task_id="same-1")
    # When both are processed
    drain(app)
    # Then it ran twice (no deduplication) and its result is stored
    assert (tmp_path / "quiet").read_text().splitlines() == ["x", "x"]
    assert app.AsyncResult("same-1").get(timeout=1) == "x"


def _write(path: Path, tag: str) -> None:
    with (path / "quiet").open("a") as out:
        out.write(tag + "\n")


def _fail() -> None:
    raise ValueError("boom")


def test_outcome_lines_keep_the_logger_name_the_readme_documents(caplog: pytest.LogCaptureFixture) -> None:
    # Given a task that succeeds and one that fails for good, on the in-process broker
    app = make_app("logged", broker="memory://", backend="memory://")
    done = app.tasks["add"].delay(1, 2)
    app.tasks["fails_loudly"].delay(10)
    # When they run, with the lines of the documented logger captured
    with caplog.at_level("INFO", logger="cloudq.execution"):
        drain(app, raise_failures=False)
    # Then both outcome lines come from ``cloudq.execution`` (docs/guides/workers.md)
    lines = [record.getMessage() for record in caplog.records if record.name == "cloudq.execution"]
    assert any(line.startswith(f"add[{done.id}] SUCCESS in ") for line in lines), lines
    # (drain applies outcomes to the received message, so the line names the broker message)
    assert any("FAILURE (attempt 1) → dead-letter queue of default" in line for line in lines), lines


def test_an_outcome_line_carries_the_attempt_as_a_field(caplog: pytest.LogCaptureFixture) -> None:
    # Given a task that succeeds, run outside any task's context (as the Lambda handler logs it)
    app = make_app("attempted", broker="memory://", backend="memory://")
    done = app.tasks["add"].delay(1, 2)
    with caplog.at_level("INFO", logger="cloudq.execution"):
        drain(app)
    # Then its SUCCESS line has the task's id and the attempt as structured fields
    [line] = [r for r in caplog.records if r.getMessage().startswith(f"add[{done.id}] SUCCESS")]
    assert (getattr(line, "task_id", None), getattr(line, "attempt", None)) == (done.id, 1)
