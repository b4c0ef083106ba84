"""Workflows end to end: real ``cloudq worker`` processes (and the Lambda trigger) on the
emulator's SQS + DynamoDB and on Redis. Short by default; ``CLOUDQ_WORKFLOWS=full`` (``make
workflows``) runs the chords and groups at 1,000 members."""

from __future__ import annotations

import os
import signal
import uuid
from itertools import combinations
from pathlib import Path

import pytest

from cloudq import CloudQ, State, chain, chord, group
from tests.e2e.conftest import LambdaFactory, WorkerFactory, side_effects
from tests.processes import wait_until, worker_log

SIZE = 1000 if os.environ.get("CLOUDQ_WORKFLOWS") == "full" else 100


def test_fifo_groups_keep_their_order_and_run_in_parallel(
    e2e_app: CloudQ, start_worker: WorkerFactory, e2e_env: dict[str, str]
) -> None:
    # Given 3 message groups of 20 tasks each on a FIFO queue
    timed = e2e_app.tasks["timed"]
    groups = [f"customer-{i}" for i in range(3)]
    for name in groups:
        timed.map([(name, index, 0.05) for index in range(20)], message_group_id=name)
    # When one worker with 8 threads runs them
    start_worker("-Q", "orders.fifo", "-c", "8")
    assert wait_until(lambda: len(side_effects(e2e_env, "timed")) == 60, timeout=60)
    runs: dict[str, list[tuple[int, float, float]]] = {name: [] for name in groups}
    for line in side_effects(e2e_env, "timed"):
        name, index, start, end = line.split()
        runs[name].append((int(index), float(start), float(end)))
    for name, intervals in runs.items():
        # Then each group ran in its order, one task at a time
        by_start = sorted(intervals, key=lambda run: run[1])
        assert [index for index, _, _ in by_start] == list(range(20)), name
        assert all(earlier[2] <= later[1] for earlier, later in zip(by_start, by_start[1:], strict=False))
    # And the groups overlapped in time
    spans = {name: (min(r[1] for r in runs[name]), max(r[2] for r in runs[name])) for name in groups}
    for one, other in combinations(groups, 2):
        assert spans[one][0] < spans[other][1] and spans[other][0] < spans[one][1], (one, other)


def test_chain_group_chord_and_revoke_on_a_worker(
    engine_app: CloudQ, start_worker: WorkerFactory, e2e_env: dict[str, str], tmp_path: Path
) -> None:
    add, total, record = engine_app.tasks["add"], engine_app.tasks["total"], engine_app.tasks["record"]
    # Given a revoked task, sent before any worker runs
    revoked = record.delay("revoked")
    assert revoked.revoke()
    # And a chain of 3, a group and a chord
    chained = chain(add.s(1, 2), add.s(3), add.s(4)).delay()
    grouped = group(add.s(i, 1) for i in range(SIZE)).delay()
    chorded = chord((add.s(i, i) for i in range(SIZE)), total.s()).delay()
    # When a worker runs them
    start_worker("-c", "8")
    # Then each gave its result
    assert chained.get(timeout=60) == 10
    assert grouped.get(timeout=120) == [i + 1 for i in range(SIZE)]
    assert chorded.get(timeout=120) == sum(2 * i for i in range(SIZE))
    # And the chord's callback ran once, having seen every member's result
    assert side_effects(e2e_env, "total") == [f"{SIZE} {sum(2 * i for i in range(SIZE))}"]
    # And the revoked task's message was received and acknowledged without running
    assert revoked.state is State.REVOKED
    assert "revoked" not in side_effects(e2e_env, "record")
    assert wait_until(lambda: f"[{revoked.id}] revoked: acknowledged" in worker_log(tmp_path), timeout=10)

    # and every message is deleted: the last deletes go out within the acker's flush after the
    # lines are written, so the queue is read until it is empty (or 10 s pass)
    def settled() -> tuple[int, int]:
        stats = engine_app.transport.stats("default")
        return stats.visible, stats.in_flight

    assert wait_until(lambda: settled() == (0, 0), timeout=10), settled()


def test_a_chord_callback_runs_once_when_a_worker_is_killed_mid_group(
    engine_app: CloudQ, start_worker: WorkerFactory, e2e_env: dict[str, str]
) -> None:
    # Given a chord whose members each take a moment, and a worker that is killed (SIGKILL)
    # mid-group, with members running and others done but not yet deleted
    slow_add, total = engine_app.tasks["slow_add"], engine_app.tasks["total"]
    result = chord((slow_add.s(i, i, 0.2) for i in range(SIZE)), total.s()).delay()
    first = start_worker("-c", "8", "--visibility-timeout", "2")
    assert wait_until(lambda: len(side_effects(e2e_env, "slow_add")) >= SIZE // 4, timeout=60)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert side_effects(e2e_env, "total") == []  # killed before the chord completed
    # When another worker takes over (the killed one's messages come back after 2 s)
    start_worker("-c", "8", "--visibility-timeout", "2")
    # Then the callback ran exactly once, with every member's result
    expected = sum(2 * i for i in range(SIZE))
    assert result.get(timeout=120) == expected
    assert wait_until(lambda: engine_app.transport.stats("default").in_flight == 0, timeout=10)
    assert side_effects(e2e_env, "total") == [f"{SIZE} {expected}"]


def test_a_chord_and_a_revoke_through_the_lambda_trigger(
    lambda_app: LambdaFactory, e2e_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis

    # Given the app deployed as a Lambda worker, whose chord callback increments a Redis key
    counter = f"e2e-chord-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("CLOUDQ_TEST_REDIS_COUNTER", counter)
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"redis-server is not reachable on 127.0.0.1:6379: {exc}", pytrace=False)
    app = lambda_app()
    add, total = app.tasks["add"], app.tasks["total"]
    # And a task revoked by id before it is sent
    revoked_id = str(uuid.uuid4())
    assert app.AsyncResult(revoked_id).revoke()
    app.tasks["record"].apply_async(("revoked-on-lambda",), task_id=revoked_id)
    # When a chord of members is sent
    result = chord((add.s(i, i) for i in range(SIZE)), total.s()).delay()
    # Then the callback saw every result, and ran once
    try:
        assert result.get(timeout=120) == sum(2 * i for i in range(SIZE))
        assert side_effects(e2e_env, "total") == [f"{SIZE} {sum(2 * i for i in range(SIZE))}"]
        assert int(client.get(counter) or 0) == 1
        # And the revoked task's message was received and deleted, without running
        assert wait_until(lambda: app.transport.stats("default").in_flight == 0, timeout=10)
        assert app.transport.stats("default").visible == 0
        assert side_effects(e2e_env, "record") == []
        assert app.AsyncResult(revoked_id).state is State.REVOKED
    finally:
        client.delete(counter)
