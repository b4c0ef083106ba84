"""The beat's lock (``cloudq.runtime.beat``: the backend's claim on a tick's key) on every result
engine: of racing beats one sends each tick, and a tick whose claimer died is sent by
another once the lease ends."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import pytest

from cloudq import CloudQ, at
from cloudq.backends.base import ResultBackend
from cloudq.core.clock import SYSTEM_CLOCK, Clock, ManualClock
from cloudq.runtime.beat import BEAT_LEASE_SECONDS, LOCK_TASK_NAME, Beat, tick_key
from tests.conformance.test_backend import ENGINES_NOT_ATOMIC_ACROSS_THREADS
from tests.tasks import make_app

TICK = 1_800_000_000.0


def _app(backend: ResultBackend, clock: Clock = SYSTEM_CLOCK) -> CloudQ:
    app = make_app("lock", broker="memory://", result_backend=backend, clock=clock)
    app.add_periodic(app.tasks["add"], 10, args=[1, 2], name="adder")
    return app


def _sent(app: CloudQ) -> int:
    return len(app.transport.receive("default", 10, wait_seconds=0))


def test_of_racing_beats_one_sends_each_tick(backend: ResultBackend, request: pytest.FixtureRequest) -> None:
    if request.node.callspec.params["backend"] in ENGINES_NOT_ATOMIC_ACROSS_THREADS:
        pytest.skip("moto's DynamoDB does not serialize conditional writes across threads (see test_backend)")
    app = _app(backend)
    periodic = app.periodic_tasks["adder"]
    beats = [Beat(app, owner=f"beat-{i}") for i in range(6)]
    start = threading.Barrier(len(beats))

    def race(beat: Beat) -> None:
        start.wait()
        for offset in range(3):
            beat.send_tick(periodic, TICK + 10 * offset)

    threads = [threading.Thread(target=race, args=(beat,)) for beat in beats]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(beat.sent for beat in beats) == 3 and _sent(app) == 3


def test_a_tick_left_by_a_dead_claimer_is_sent_after_the_lease(backend: ResultBackend) -> None:
    # The engines' own clocks (Redis EXPIREAT, DynamoDB TTL) are real: the beat's starts at now.
    clock = ManualClock(time.time())
    app = _app(backend, clock)
    periodic = app.periodic_tasks["adder"]
    backend.claim(tick_key(periodic, TICK), LOCK_TASK_NAME, "dead-beat", BEAT_LEASE_SECONDS, clock.time())
    survivor = Beat(app, owner="survivor")
    assert survivor.send_tick(periodic, TICK) == pytest.approx(BEAT_LEASE_SECONDS, abs=0.5)
    clock.advance(BEAT_LEASE_SECONDS + 0.5)
    assert survivor.send_tick(periodic, TICK) is None and _sent(app) == 1
    assert Beat(app, owner="late").send_tick(periodic, TICK) is None and _sent(app) == 0


def _ticks_sent(app: CloudQ) -> list[str]:
    """The task ids sent (``<name>@<tick>``), each message received once."""
    got = app.transport.receive("default", 10, wait_seconds=0)
    return sorted(json.loads(message.body)["id"] for message in got)


def test_two_beats_send_each_tick_of_a_run_time_schedule_once_and_an_at_once(backend: ResultBackend) -> None:
    # Given two beats of an app whose run-time schedules live in the backend (memory broker)
    start = (int(time.time()) // 10 + 1) * 10.0  # a tick of rate(10 seconds), seconds ahead
    clock = ManualClock(start - 5)
    app = make_app("runtime", broker="memory://", result_backend=backend, clock=clock)
    beats = [Beat(app, owner=f"beat-{i}") for i in range(2)]
    for beat in beats:
        beat.start()
        beat.step()
    # When a schedule and a one-off are created while they run
    app.schedules.create("every-10", app.tasks["add"], "rate(10 seconds)", args=[1, 2])
    once = dt.datetime.fromtimestamp(start + 3, dt.timezone.utc)
    app.schedules.create("once", app.tasks["echo"], at(once), kwargs={"value": "hi"})
    # Then within a tick both beats pick them up: three ticks, each sent once, and the at() once
    for offset in (1, 6, 11, 16):
        clock.set(start - 5 + offset)
        for beat in beats:
            beat.step()
    ticks = [f"every-10@{int(start)}", f"every-10@{int(start) + 10}"]
    assert _ticks_sent(app) == sorted([*ticks, f"once@{int(start) + 3}"])
    # And the fired at() is gone; a deleted schedule sends no more
    assert [periodic.name for periodic in app.schedules.list()] == ["every-10"]
    assert app.schedules.delete("every-10")
    clock.set(start + 21)
    for beat in beats:
        beat.step()
    assert _ticks_sent(app) == []
    assert sum(beat.sent for beat in beats) == 3
