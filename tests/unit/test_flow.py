"""Flow control on one app (memory engines, an injected clock): rate limits and concurrency
caps hold through the result backend, and waiting is never an attempt."""

from __future__ import annotations

import threading
import time

import pytest

from cloudq import CloudQ, State
from cloudq.backends.base import ResultBackend, ResultRecord
from cloudq.core.clock import ManualClock
from cloudq.core.errors import TaskRegistrationError
from cloudq.core.flow import FlowOptions
from cloudq.runtime.attempts import Attempts
from cloudq.runtime.executor import DEFAULT_LEASE_SECONDS, LEASE_MARGIN_SECONDS, Executor
from cloudq.runtime.flow import Lease
from cloudq.runtime.heartbeat import Heartbeat
from cloudq.runtime.ledger import Ledger
from cloudq.runtime.outcome import Action, apply_outcome
from cloudq.testing import FakeLambdaContext, drain, sqs_event
from cloudq.transports.base import ReceivedMessage
from tests.tasks import make_app


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def app(clock: ManualClock) -> CloudQ:
    return make_app("flow", broker="memory://", backend="memory://", clock=clock)


def _backend(app: CloudQ) -> ResultBackend:
    backend = app.backend
    assert backend is not None
    return backend


def test_a_bucket_of_100_a_minute_refuses_the_101st_call_and_resends_it_for_its_slot(
    app: CloudQ, clock: ManualClock
) -> None:
    # Given 101 calls of a task limited to 100 a minute (a burst of 100)
    start = clock.time()
    results = [app.tasks["limited"].delay(str(i)) for i in range(101)]
    executor = Executor(app)
    outcomes = []
    # When each is received once, in the same instant
    received = []
    while len(received) < 101:
        received += app.transport.receive("default", 10, wait_seconds=0)
    for message in received:
        outcome = executor.execute(message)
        apply_outcome(app.transport, message, outcome)
        outcomes.append(outcome)
    # Then 100 ran, and the 101st is re-sent holding the next slot, 0.6 s ahead (delivered
    # at once: broker delays are whole seconds, rounded down; the rest is waited for)
    assert [outcome.action for outcome in outcomes].count(Action.ACK) == 100
    [later] = [outcome for outcome in outcomes if outcome.action is not Action.ACK]
    assert (later.action, later.delay_seconds) == (Action.RESEND, 0)
    assert "over its rate limit: re-sent to run in 0.60 s" in later.reason
    # And it has not run or spent an attempt: it runs on its next delivery, on its first try
    waiting = [result for result in results if result.state is State.PENDING]
    assert len(waiting) == 1
    drain(app)
    record = waiting[0].record()
    assert record is not None and (record.state, record.attempts) == (State.SUCCESS, 1)
    assert record.value == pytest.approx(clock.time(), abs=1e-3) and record.value >= start + 0.6 - 1e-3


def test_a_backlog_drains_at_the_rate_per_key_and_nothing_waits_as_an_attempt(
    app: CloudQ, clock: ManualClock
) -> None:
    # Given 20 calls for each of two customers, limited to 10 a second per customer, with
    # max_retries=0 (a wait counted as an attempt would dead-letter them)
    start = clock.time()
    results = {
        customer: [app.tasks["paced"].delay(customer, str(i)) for i in range(20)] for customer in ("a", "b")
    }
    # When the queue is drained (the clock moves while delayed messages wait)
    drain(app)
    # Then every call succeeded at its first attempt, each customer's runs at most 10 a second
    for customer, sent in results.items():
        records = [result.record() for result in sent]
        assert all(r is not None and (r.state, r.attempts) == (State.SUCCESS, 1) for r in records)
        times = sorted(r.value - start for r in records if r is not None)
        for index, moment in enumerate(times):
            assert moment >= index * 0.1 - 1e-3, f"customer {customer}: run {index} at {moment:.2f} s"
        assert times[-1] < 4.0  # at the rate, not much slower: one re-send per message


def test_a_cap_of_1_resends_a_second_run_until_the_first_ends(app: CloudQ, clock: ManualClock) -> None:
    # Given another run holds the only slot of a singleton
    backend = _backend(app)
    assert backend.acquire_lease("capped", "elsewhere", 1, 30, clock.time()) == 0.0
    result = app.tasks["capped"].delay()
    [received] = app.transport.receive("default", 1, wait_seconds=0)
    # When its message is executed
    outcome = Executor(app).execute(received)
    # Then it is re-sent to try again in 1 or 2 s (spread), not claimed (no attempt spent)
    assert outcome.action is Action.RESEND and outcome.delay_seconds in (1, 2)
    assert "concurrency cap" in outcome.reason and result.record() is None
    apply_outcome(app.transport, received, outcome)
    # And once the other run ends it runs, and its own lease is released at its end
    backend.release_lease("capped", "elsewhere")
    drain(app)
    assert result.get(timeout=1) > 0
    assert backend.acquire_lease("capped", "next", 1, 30, clock.time()) == 0.0


def test_a_worker_thread_waits_briefly_for_a_slot_before_resending() -> None:
    # Given a worker's executor that lets threads wait for slots, and a singleton whose only
    # slot another run holds (on the real clock: the wait is in real time)
    app = make_app("flow", broker="memory://", backend="memory://")
    backend = _backend(app)
    assert backend.acquire_lease("capped", "elsewhere", 1, 30, app.clock.time()) == 0.0
    executor = Executor(app)
    executor.flow.wait_for_slots(threads=2, queued=list, prepare=executor.prepare, seconds=5.0)
    result = app.tasks["capped"].delay()
    [received] = app.transport.receive("default", 1, wait_seconds=0)
    # When the other run ends 0.3 s into the wait
    ends = threading.Timer(0.3, backend.release_lease, ("capped", "elsewhere"))
    ends.start()
    started = time.monotonic()
    outcome = executor.execute(received)
    waited = time.monotonic() - started
    ends.join()
    # Then the message ran in that thread once the slot freed (no re-send, no attempt spent
    # waiting) and released its own lease at its end
    assert outcome.action is Action.ACK, outcome.reason
    assert 0.3 <= waited < 4.0  # not its 5 s
    assert result.get(timeout=1) > 0 and _record_attempts(result.record()) == 1
    assert backend.acquire_lease("capped", "next", 1, 30, app.clock.time()) == 0.0


def test_a_slot_passes_to_a_thread_of_the_same_process_without_a_backend_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a worker's executor that lets threads wait for slots, and two runs of a singleton
    # of 0.3 s each, executed at once in two threads (on the real clock)
    app = make_app("flow", broker="memory://", backend="memory://")
    backend = _backend(app)
    releases: list[str] = []
    release = type(backend).release_lease

    def counting(self: ResultBackend, key: str, holder: str) -> None:
        releases.append(holder)
        release(self, key, holder)

    monkeypatch.setattr(type(backend), "release_lease", counting)
    executor = Executor(app)
    executor.flow.wait_for_slots(threads=2, queued=list, prepare=executor.prepare, seconds=5.0)
    results = app.tasks["singleton"].map([(0.3,), (0.3,)])
    messages = app.transport.receive("default", 2, wait_seconds=0)
    actions: list[Action] = []
    threads = [
        threading.Thread(target=lambda m=message: actions.append(executor.execute(m).action))
        for message in messages
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then both ran, one after the other, each counted once...
    assert actions == [Action.ACK, Action.ACK]
    first, second = sorted(result.get(timeout=1) for result in results)
    assert second - first >= 0.3
    assert {_record_attempts(result.record()) for result in results} == {1}
    # ...the first run's end handed its slot to the waiting thread: the backend released it
    # once, at the second run's end, and it is free now
    assert len(releases) == 1
    assert backend.acquire_lease("singleton", "next", 1, 30, app.clock.time()) == 0.0


def test_a_runs_slot_frees_as_its_task_returns_before_its_result_is_stored(
    app: CloudQ, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a singleton, and a look at its slot whenever a result is stored
    backend = _backend(app)
    slot_free_at_store: list[bool] = []
    store = type(backend).put

    def looking(self: ResultBackend, *args: object, **kwargs: object) -> object:
        free = backend.acquire_lease("capped", "probe", 1, 30, clock.time()) == 0.0
        if free:
            backend.release_lease("capped", "probe")
        slot_free_at_store.append(free)
        return store(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(type(backend), "put", looking)
    result = app.tasks["capped"].delay()
    # When it runs
    drain(app)
    # Then its slot was free again by the time its result was written
    assert result.get(timeout=1) > 0
    assert slot_free_at_store == [True]


def test_a_wait_for_a_slot_that_never_frees_ends_in_a_resend_and_extra_waiters_resend_at_once() -> None:
    # Given a worker that lets one thread wait 1.5 s, and a singleton's slot held elsewhere
    app = make_app("flow", broker="memory://", backend="memory://")
    backend = _backend(app)
    backend.acquire_lease("capped", "elsewhere", 1, 30, app.clock.time())
    executor = Executor(app)
    executor.flow.wait_for_slots(threads=1, queued=list, prepare=executor.prepare, seconds=1.5)
    app.tasks["capped"].map([(), ()])
    first, second = app.transport.receive("default", 2, wait_seconds=0)
    # When both are executed at once
    outcomes: dict[str, tuple[Action, float]] = {}

    def run(received: ReceivedMessage) -> None:
        started = time.monotonic()
        action = executor.execute(received).action
        outcomes[received.message_id] = (action, time.monotonic() - started)

    threads = [threading.Thread(target=run, args=(message,)) for message in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then both are re-sent (waiting is not an attempt): one after its 1.5 s wait, the other
    # at once (one thread may wait), well before (a loaded machine took 0.26 s)
    assert {action for action, _ in outcomes.values()} == {Action.RESEND}
    waits = sorted(seconds for _, seconds in outcomes.values())
    assert waits[0] < 1.0 and 1.5 <= waits[1] < 5.0, waits


def test_a_thread_waiting_for_a_slot_gives_way_to_a_message_that_may_run_at_once() -> None:
    # Given a worker that lets a thread wait 5 s for a slot, and a singleton's slot held
    app = make_app("flow", broker="memory://", backend="memory://")
    _backend(app).acquire_lease("capped", "elsewhere", 1, 30, app.clock.time())
    queued: list[ReceivedMessage] = []
    executor = Executor(app)
    executor.flow.wait_for_slots(
        threads=4, queued=lambda: list(queued), prepare=executor.prepare, seconds=5.0
    )
    app.tasks["capped"].delay()
    app.tasks["add"].delay(1, 2)
    received, other = app.transport.receive("default", 2, wait_seconds=0)
    # When, 0.2 s into its wait, a message of an uncapped task is left queued for a thread
    threading.Timer(0.2, queued.append, (other,)).start()
    started = time.monotonic()
    outcome = executor.execute(received)
    # Then it stops waiting at once and re-sends its message (not an attempt)
    assert outcome.action is Action.RESEND
    assert 0.2 <= time.monotonic() - started < 3.0  # not its 5 s


def test_a_thread_waiting_for_a_slot_keeps_it_when_the_message_queued_waits_on_the_same_cap() -> None:
    # Given a worker that lets a thread wait 5 s for a slot, a singleton's slot held, and
    # another run of the singleton queued for a thread (a worker's look-ahead of a backlog)
    app = make_app("flow", broker="memory://", backend="memory://")
    backend = _backend(app)
    backend.acquire_lease("capped", "elsewhere", 1, 30, app.clock.time())
    executor = Executor(app)
    app.tasks["capped"].map([(), ()])
    received, same = app.transport.receive("default", 2, wait_seconds=0)
    executor.flow.wait_for_slots(threads=4, queued=lambda: [same], prepare=executor.prepare, seconds=5.0)
    # When the slot frees 0.5 s into the wait
    threading.Timer(0.5, backend.release_lease, ("capped", "elsewhere")).start()
    outcome = executor.execute(received)
    # Then the thread kept waiting (giving way would only re-send its message: the queued one
    # could not run either) and ran its message once the slot freed
    assert outcome.action is Action.ACK, outcome.reason


def _record_attempts(record: ResultRecord | None) -> int:
    assert record is not None
    return record.attempts


def test_a_crashed_holders_slot_frees_when_its_lease_ends(app: CloudQ, clock: ManualClock) -> None:
    # Given a holder that died holding the slot (its 30 s lease is never renewed or released)
    _backend(app).acquire_lease("capped", "dead-worker", 1, 30, clock.time())
    result = app.tasks["capped"].delay()
    # When the queue is drained (the clock moves while the message is re-sent each second)
    drain(app, timeout=60)
    # Then it ran once the dead holder's lease ended, at its first attempt
    record = result.record()
    assert record is not None and (record.state, record.attempts) == (State.SUCCESS, 1)
    assert record.value >= clock.time() - 2 and record.date_started is not None


def test_a_cap_per_key_counts_each_key_apart(app: CloudQ, clock: ManualClock) -> None:
    # Given customer a's 2 slots are held elsewhere
    backend = _backend(app)
    for holder in ("x", "y"):
        backend.acquire_lease("capped_per_customer:a", holder, 2, 300, clock.time())
    app.tasks["capped_per_customer"].delay("a")
    app.tasks["capped_per_customer"].delay("b")
    executor = Executor(app)
    # When both are received
    actions = {}
    for message in app.transport.receive("default", 10, wait_seconds=0):
        prepared = executor.prepare(message)
        assert prepared.message is not None
        actions[prepared.message.args[0]] = executor.execute(prepared).action
    # Then b runs and a waits
    assert actions == {"a": Action.RESEND, "b": Action.ACK}


def test_on_lambda_a_record_at_its_cap_is_resent_and_runs_once_a_slot_frees(
    app: CloudQ, clock: ManualClock
) -> None:
    # Given a singleton's slot held elsewhere (a worker's run), and a call of it
    backend = _backend(app)
    backend.acquire_lease("capped", "worker", 1, 300, clock.time())
    result = app.tasks["capped"].delay()
    # When the Lambda handler gets its record
    response = app.lambda_handler(sqs_event(app), FakeLambdaContext(timeout_seconds=10))
    # Then the record is not run, not failed and not an attempt: it is re-sent for later
    assert response == {"batchItemFailures": []}
    assert result.record() is None
    assert sqs_event(app)["Records"] == []  # not visible before its delay
    # And once the worker's run ends, a later invocation runs it
    backend.release_lease("capped", "worker")
    clock.advance(3)
    app.lambda_handler(sqs_event(app), FakeLambdaContext(timeout_seconds=10))
    assert result.get(timeout=1) > 0 and _record_attempts(result.record()) == 1


def test_the_heartbeat_renews_a_running_tasks_lease(app: CloudQ, clock: ManualClock) -> None:
    # Given a run admitted under a cap of 1, with 30 s leases
    executor = Executor(app)
    executor.flow.lease_seconds = 30
    app.tasks["capped"].delay()
    [received] = app.transport.receive("default", 1, wait_seconds=0)
    prepared = executor.prepare(received)
    assert prepared.task is not None and prepared.message is not None
    attempts = Attempts.of_delivery(prepared.message, received)
    lease = executor.flow.admit(prepared.task, prepared.message, received, attempts, ((), {}))
    assert isinstance(lease, Lease)
    heartbeat = Heartbeat(app.transport, Ledger(10), 30, renew=executor.flow.renew)
    backend = _backend(app)
    # When the heartbeat beats 20 s later
    clock.advance(20)
    heartbeat.beat(clock.monotonic())
    # Then the lease outlives its first 30 s, and once released the slot is free
    clock.advance(20)
    assert backend.acquire_lease("capped", "other", 1, 30, clock.time()) > 0
    executor.flow.release(lease)
    assert backend.acquire_lease("capped", "other", 1, 30, clock.time()) == 0.0


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"rate_limit": "100/d"}, "N/s, N/m or N/h"),
        ({"rate_limit": "0/s"}, "N/s, N/m or N/h"),
        ({"rate_limit": "5/s", "rate_burst": 0}, "rate_burst must be a whole number"),
        ({"max_concurrency": 0}, "max_concurrency must be a whole number"),
        ({"rate_key": "user"}, "rate_key is a key of rate_limit"),
        ({"max_concurrency": 2, "concurrency_key": "nobody"}, "'nobody' is not a parameter"),
    ],
)
def test_flow_options_are_checked_when_the_task_is_registered(
    options: dict[str, object], problem: str
) -> None:
    app = CloudQ("opts", broker="memory://", backend="memory://")
    with pytest.raises(TaskRegistrationError, match=problem):
        app.task(**options)(lambda user: user)  # type: ignore[call-overload]


def test_a_running_task_reports_progress_that_the_producer_reads(app: CloudQ) -> None:
    # Given a task that reports 3 steps and reads its own handle after each
    result = app.tasks["progressing"].delay(3)
    # When it runs
    drain(app)
    # Then each report was read back while it ran, as PROGRESS
    assert result.get(timeout=1) == [
        ["PROGRESS", {"done": float(step), "total": 3.0, "message": f"step {step}"}] for step in (1, 2, 3)
    ]
    # And once done the record is SUCCESS, with no progress left to show
    assert (result.state, result.progress) == (State.SUCCESS, None)


def test_progress_that_is_not_json_is_a_clear_error(app: CloudQ) -> None:
    # Given a task reporting a progress of NaN (not JSON)
    result = app.tasks["bad_progress"].delay()
    # When it runs
    drain(app, raise_failures=False)
    # Then it fails, saying which value is wrong
    assert result.failed()
    assert result.result.startswith("set_progress: done must be a finite number, not nan")


def test_set_progress_outside_a_run_is_a_clear_error(app: CloudQ) -> None:
    # Given a bound task called here, not run by a worker
    # When it reports progress / Then it is told it runs nowhere
    with pytest.raises(Exception, match="progressing.request is only available while the task runs"):
        app.tasks["progressing"](1)


def test_a_soft_timeout_gives_the_run_a_deadline_it_can_read(app: CloudQ, clock: ManualClock) -> None:
    # Given a task with soft_timeout=5 that works 2 s (on the manual clock)
    result = app.tasks["soft_limited"].delay(2.0)
    # When it runs
    drain(app)
    # Then its deadline was 5 s after its start, and 3 s remained after its work
    assert result.get(timeout=1) == [5.0, 3.0]


def test_without_a_soft_timeout_a_worker_run_has_no_deadline(app: CloudQ) -> None:
    # Given a task with no soft_timeout: when it runs, its request has no deadline
    app.tasks["soft_limited"].flow = FlowOptions()
    result = app.tasks["soft_limited"].delay(0.0)
    drain(app)
    assert result.get(timeout=1) == [None, None]


def test_on_lambda_the_invocations_end_bounds_the_deadline(app: CloudQ, clock: ManualClock) -> None:
    # Given a task with soft_timeout=5 on a Lambda invocation with 4 s left
    result = app.tasks["soft_limited"].delay(2.0)
    # When the handler runs it
    assert app.lambda_handler(sqs_event(app), FakeLambdaContext(timeout_seconds=4)) == {
        "batchItemFailures": []
    }
    # Then its deadline is a margin (1 s) before the invocation ends, not 5 s away
    deadline, remaining = result.get(timeout=1)
    assert deadline == pytest.approx(3.0, abs=0.1)
    assert remaining == pytest.approx(1.0, abs=0.1)


def test_a_soft_timeout_must_be_a_positive_number(app: CloudQ) -> None:
    with pytest.raises(
        TaskRegistrationError, match="soft_timeout must be a number of seconds above 0, not 0"
    ):
        app.task(name="bad_soft", soft_timeout=0)(lambda: None)


def test_progress_is_written_at_most_once_a_second_per_run(app: CloudQ) -> None:
    # Given a task reporting 3 steps in the same instant (the manual clock does not move)
    result = app.tasks["progressing"].delay(3, pause=0.0)
    # When it runs
    drain(app)
    # Then only the first report was written; the two after it, within the second, were not
    first = ["PROGRESS", {"done": 1.0, "total": 3.0, "message": "step 1"}]
    assert result.get(timeout=1) == [first, first, first]


def test_a_progress_report_lands_only_while_the_run_holds_its_claim(app: CloudQ) -> None:
    # Given a task that reports at its start, and again after its claim's lease has run out
    result = app.tasks["late_progress"].delay(DEFAULT_LEASE_SECONDS + LEASE_MARGIN_SECONDS + 1)
    # When it runs
    drain(app, timeout=1000)  # the manual clock moves past the lease
    # Then the first report landed and the late one did not (the claim is no longer its)
    assert result.get(timeout=1) == [True, False]
