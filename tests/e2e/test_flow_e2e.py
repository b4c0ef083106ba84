"""Flow control end to end (README "Flow control"): real worker processes on Redis (the soft
limit on the Lambda trigger is in ``test_lambda_e2e.py``). The acceptance scenarios run short
here; ``make flow`` (``CLOUDQ_FLOW=full``) runs them at the issue's numbers."""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from cloudq import CloudQ, State, Task
from cloudq.infra.model import app_resources
from cloudq_emulator.server import MinistackServer
from tests.e2e.conftest import LambdaFactory, WorkerFactory
from tests.tasks import make_app

#: The issue's numbers (``make flow``); short otherwise (``make test``).
FULL = os.environ.get("CLOUDQ_FLOW", "").lower() == "full"
#: Batches the emulator's trigger runs at once, each in an execution environment of its own
#: (a mapping without MaximumConcurrency: ministack's default).
LAMBDA_ENVIRONMENTS = 5


def test_a_soft_limit_reaches_a_looping_task_on_a_thread_worker_and_under_processes(
    redis_app: CloudQ, start_worker: WorkerFactory
) -> None:
    # Given a thread worker on one queue and a worker of 2 processes on another, and on each
    # a task with soft_timeout=1 that would loop 10 s
    start_worker("-Q", "default", "-c", "2")
    start_worker("-Q", "orders.fifo", "--processes", "2", "-c", "1")
    task = redis_app.tasks["soft_looped"]
    on_threads = task.delay(10.0)
    under_processes = task.apply_async((10.0,), queue="orders.fifo", message_group_id="soft")
    # When they run / Then each saw SoftTimeLimitExceeded within 1.2 s, through its finally
    for result in (on_threads, under_processes):
        seen = result.get(timeout=30)
        assert seen["finally_ran"] is True
        # (the limit counts from the run's start, a little before the body's: 0.89 s
        # was seen on a loaded machine, so the lower bound only guards against far too early)
        assert 0.5 <= seen["raised_after"] < 1.2


@pytest.fixture
def laned_app(redis_app: CloudQ, e2e_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> CloudQ:
    """``redis_app`` with a high lane on its default queue, for it and its workers."""
    monkeypatch.setenv("CLOUDQ_PRIORITY_QUEUES", "default")
    e2e_env["CLOUDQ_PRIORITY_QUEUES"] = "default"
    return make_app(e2e_env["CLOUDQ_TEST_APP"])


def _high_tasks_start_soon(work: Task[Any, Any], runner: str) -> None:
    """Send high tasks of ``work`` (``lane_work``: it returns when it started) one at a time,
    each once the last one started; their waits from send to start: p95 under 1 s with the
    issue's numbers (20 samples), under 3 s short (5)."""
    waits = []
    for _ in range(20 if FULL else 5):
        sent = time.time()
        started = work.apply_async((0.0,), priority="high").get(timeout=30)
        waits.append(started - sent)
    waits.sort()
    p95 = waits[max(0, round(0.95 * len(waits)) - 1)]
    print(
        f"\n[lanes] {runner}: a high task started after p50 {waits[len(waits) // 2]:.2f} s, p95 {p95:.2f} s"
    )
    assert p95 < (1.0 if FULL else 3.0), waits


def test_a_high_task_starts_soon_behind_a_backlog_of_default_ones(
    laned_app: CloudQ, start_worker: WorkerFactory
) -> None:
    # Given a backlog of default tasks of 0.2 s (2,000 with the numbers) on a busy
    # worker of 4 threads
    work = laned_app.tasks["lane_work"]
    work.map([0.2] * (2000 if FULL else 200))
    start_worker("-c", "4")
    work.apply_async((0.0,), priority="high").get(timeout=30)  # the worker is up, and busy
    # When high tasks are sent, one at a time / Then each started soon, while the backlog
    # still waited (the issue: within 1 s, p95 of 20; short, within a few seconds on a loaded
    # machine)
    _high_tasks_start_soon(work, "worker")
    assert laned_app.transport.stats("default").visible > 100


def test_a_high_task_starts_soon_behind_a_backlog_on_the_lambda_function(
    lambda_app: LambdaFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the app's Lambda function with a high lane on its default queue (a mapping of its
    # own), at most 2 invocations per mapping, busy with a backlog of default tasks of 0.5 s
    monkeypatch.setenv("CLOUDQ_PRIORITY_QUEUES", "default")
    app = lambda_app(timeout=10, concurrency=2)
    work = app.tasks["lane_work"]
    work.map([0.5] * (2000 if FULL else 100))
    work.apply_async((0.0,), priority="high").get(timeout=30)  # the high lane's mapping polls
    # When high tasks are sent, one at a time / Then each started soon, while the backlog
    # still waited
    _high_tasks_start_soon(work, "Lambda")
    assert app.transport.stats("default").visible > 10


def test_weighted_lanes_keep_the_default_lane_moving(laned_app: CloudQ, start_worker: WorkerFactory) -> None:
    # Given 40 high and 8 default tasks of 0.1 s queued for a worker of 2 threads, weighted 4:1
    work = laned_app.tasks["lane_work"]
    highs = work.map([0.1] * 40, priority="high")
    defaults = work.map([0.1] * 8)
    start_worker("-c", "2", "--lanes", "weighted:4:1")
    # When they run
    high_starts = [result.get(timeout=30) for result in highs]
    default_starts = [result.get(timeout=30) for result in defaults]
    # Then default tasks kept starting while high ones waited (strict lanes: 1 seen, by chance)
    during = [min(high_starts) < start < max(high_starts) for start in default_starts]
    assert sum(during) >= 4, (high_starts, default_starts)


# -- the acceptance scenarios: short here, the numbers with CLOUDQ_FLOW=full (make flow)


def _most_at_once(intervals: list[tuple[float, float]]) -> tuple[int, float]:
    """The most intervals overlapping at once, and the time-weighted mean of those running
    over the span from the first start to the last end."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running, most, area = 0, 0, 0.0
    for (at, step), (after, _) in zip(events, [*events[1:], events[-1]], strict=True):
        running += step
        most = max(most, running)
        area += running * (after - at)
    return most, area / (events[-1][0] - events[0][0])


def test_caps_rate_limits_and_progress_hold_across_two_worker_processes(
    redis_app: CloudQ, start_worker: WorkerFactory
) -> None:
    # Given two worker processes of 8 threads, and: tasks capped at 3 running (0.2 s each),
    # tasks capped at 2 per customer (5 customers), tasks limited to 50/s fleet-wide, and a
    # task reporting its progress every 0.1 s. With the numbers the capped tasks run
    # first, alone (its scenario); short, all run at once.
    capped = redis_app.tasks["fleet_capped"].map([0.2] * (300 if FULL else 12))
    for _ in range(2):
        start_worker("-c", "8")
    capped_runs = [result.get(timeout=120) for result in capped] if FULL else []
    keyed = redis_app.tasks["key_capped"].map([(f"c{i % 5}", 0.2) for i in range(100 if FULL else 20)])
    paced = redis_app.tasks["fleet_paced"].map([str(i) for i in range(500 if FULL else 60)])
    progress_seconds = 3.0 if FULL else 2.2
    reporting = redis_app.tasks["progress_for"].delay(progress_seconds)
    # When they run, the producer reading the progress meanwhile
    seen = set()
    deadline = time.monotonic() + 30
    while not reporting.ready() and time.monotonic() < deadline:
        report = reporting.progress
        if report is not None:
            seen.add(report.done)
        time.sleep(0.05)
    capped_runs = capped_runs or [result.get(timeout=120) for result in capped]
    keyed_runs = [(f"c{i % 5}", result.get(timeout=120)) for i, result in enumerate(keyed)]
    paced_starts = sorted(result.get(timeout=120) for result in paced)
    # Then at most 3 capped tasks ran at once (they counted themselves in Redis), and with the
    # full numbers they kept 3 running most of the time
    assert max(at_once for at_once, *_ in capped_runs) <= 3
    most, mean = _most_at_once([(start, end) for _, start, end, _ in capped_runs])
    print(f"\n[caps] Redis, 2 workers: at most {most} at once, {mean:.2f} on average")
    assert most <= 3
    if FULL:
        assert mean >= 2.5, mean
    # ...at most 2 per customer
    assert max(at_once for _, (at_once, *_) in keyed_runs) <= 2
    # ...the rate limit held across both workers: within the band (45-55/s) over the
    # whole run, and in any 1 s window at most 51 (a bucket of 1) give or take the starts'
    # lag. The starts are measured in the tasks, and lag their slots when the threads are
    # busy: a message delivered before its slot waits for it in a thread, up to 1 s (at 50/s
    # such waits alone can take more than the 16 threads there are), and one at its cap waits
    # in a thread too; a run held past its slot bunches with the next ones. Seen: 51.05/s over
    # a short run; at full scale, windows of 61 to 83. The window's bound tells a limiter that
    # holds from one that does not (the 500 would start within a few seconds).
    rate = (len(paced_starts) - 1) / (paced_starts[-1] - paced_starts[0])
    window = max(sum(1 for t in paced_starts if start <= t < start + 1) for start in paced_starts)
    print(f"[rate] {rate:.2f}/s over the run, at most {window} in a 1 s window")
    assert rate <= 55 and window <= 100, (rate, window)
    if FULL:
        assert 45 <= rate, rate
    # ...no attempt was spent waiting and nothing was dead-lettered
    ids = [result.id for result in [*capped, *keyed, *paced]]
    assert redis_app.backend is not None
    assert {record.attempts for record in redis_app.backend.get_many(ids).values()} == {1}
    assert redis_app.transport.stats("default-dlq").visible == 0
    # ...and the producer saw the progress move (at most a write a second: 3 in 2.2 s)
    assert len(seen) >= 3, seen


def test_a_killed_workers_slot_frees_within_its_lease(redis_app: CloudQ, start_worker: WorkerFactory) -> None:
    # Given a singleton task (max_concurrency=1) running on a worker whose leases last 1 s
    # (its visibility timeout)
    first = start_worker("-c", "2", "--visibility-timeout", "1")
    killed = redis_app.tasks["singleton"].delay(2.0)
    deadline = time.monotonic() + 30
    while redis_app.AsyncResult(killed.id).state is not State.STARTED and time.monotonic() < deadline:
        time.sleep(0.05)
    # When that worker is killed mid-run, and another worker serves the queue
    first.send_signal(signal.SIGKILL)
    killed_at = time.time()
    start_worker("-c", "2", "--visibility-timeout", "1")
    waiting = redis_app.tasks["singleton"].delay(0.0)
    # Then the slot freed within the lease: the task sent after the kill started within the
    # lease, a second's re-send, a receive and perhaps the killed run's second attempt (not
    # after the 900 s of a lease never renewed)
    assert waiting.get(timeout=60) - killed_at < 10
    # ...and nothing was lost or dead-lettered: the killed run ran again (its second attempt),
    # or its message waits in the queue for its task id's claim to end (the crashed claim's
    # lease: README "Idempotency")
    assert redis_app.backend is not None
    record = redis_app.backend.get(killed.id)
    stats = redis_app.transport.stats("default")
    assert record is not None
    assert (record.state, record.attempts) == (
        State.SUCCESS,
        2,
    ) or stats.visible + stats.in_flight + stats.delayed == 1
    assert redis_app.transport.stats("default-dlq").visible == 0


def _wait_for_banners(tmp_path: Path, workers: int, timeout: float = 30) -> None:
    """Wait until ``workers`` worker processes have logged their start line (then they poll)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = [tmp_path / f"worker-{n}.log" for n in range(workers)]
        if all(log.exists() and "cloudq worker: app" in log.read_text(errors="replace") for log in logs):
            return
        time.sleep(0.05)
    raise AssertionError(f"{workers} workers did not start within {timeout} s")


def _warm(function_name: str, endpoint_url: str, environments: int) -> None:
    """Start ``environments`` execution environments of the function (concurrent empty
    invocations), as the workers are up before their scenario starts: on two cores their cold
    starts would otherwise take the CPU from the workers in the scenario's first seconds."""
    import boto3

    client = boto3.client("lambda", endpoint_url=endpoint_url, region_name="us-east-1")
    event = json.dumps({"Records": []})
    with ThreadPoolExecutor(environments) as pool:
        list(
            pool.map(lambda _: client.invoke(FunctionName=function_name, Payload=event), range(environments))
        )


def test_a_cap_holds_across_two_workers_and_the_lambda_function(
    lambda_app: LambdaFactory, start_worker: WorkerFactory, tmp_path: Path, ministack_server: MinistackServer
) -> None:
    # Given the app's Lambda function on the emulator's trigger (SQS and DynamoDB), warm, and
    # two worker processes of 8 threads, up and polling, all serving the default queue
    app = lambda_app(timeout=10)
    for _ in range(2):
        start_worker("-c", "8")
    _wait_for_banners(tmp_path, 2)
    function = app_resources(app, "tests.tasks:app").function
    assert function is not None
    _warm(function.function_name, ministack_server.endpoint_url, LAMBDA_ENVIRONMENTS)
    # When tasks capped at 3 running (0.2 s each, counting themselves in Redis) are queued
    results = app.tasks["fleet_capped"].map([0.2] * (300 if FULL else 30))
    runs = [result.get(timeout=180) for result in results]
    # Then at most 3 ran at once, whoever ran them, and with the full numbers they kept 3
    # running most of the time
    assert max(at_once for at_once, *_ in runs) <= 3
    most, mean = _most_at_once([(start, end) for _, start, end, _ in runs])
    on_lambda = sum(1 for *_, lambda_run in runs if lambda_run)
    print(
        f"\n[caps] {len(runs)} runs of 0.2 s, cap 3: at most {most} at once, {mean:.2f} on average; "
        f"{on_lambda} ran on the Lambda function, {len(runs) - on_lambda} on the workers"
    )
    assert most <= 3
    if FULL:
        assert mean >= 2.5, mean
    # ...whoever ran them: the workers keep a slot while a thread of theirs waits for it, and
    # their waiting threads hold the messages they received, so the function runs what it
    # finds a slot for (0 to 30 of the short form's 30, 0 to 6 of the 300 seen); its lease
    # calls are the ones the workers make (tests/unit/test_flow.py runs them on the handler).
    # No attempt was spent waiting, nothing dead-lettered
    assert app.backend is not None
    records = app.backend.get_many([result.id for result in results])
    assert {record.attempts for record in records.values()} == {1}
    assert app.transport.stats("default-dlq").visible == 0
