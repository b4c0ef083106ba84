"""``cloudq beat`` processes on the emulator (SQS, and DynamoDB for the lock): two beats send
each tick of a seconds-level schedule once, and when one is killed the other sends every tick
from then on, the one the dead beat had claimed included."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable

import pytest

from cloudq import CloudQ
from tests.e2e.conftest import BeatFactory
from tests.processes import wait_until

INTERVAL = 2


@pytest.fixture
def start_ticking_beat(start_beat: BeatFactory) -> Callable[[], subprocess.Popen[str]]:
    """A beat of the test app with its periodic task every ``INTERVAL`` seconds."""
    return lambda: start_beat(env={"CLOUDQ_TEST_PERIODIC": str(INTERVAL)})


def _ticks(app: CloudQ) -> list[int]:
    """The tick of every message in the default queue (each received once: the queue's
    visibility timeout outlasts the reading)."""
    ticks: list[int] = []
    while True:
        got = app.transport.receive("default", 10, wait_seconds=1)
        if not got:
            return sorted(ticks)
        for message in got:
            envelope = json.loads(message.body)
            assert envelope["task"] == "record" and envelope["args"] == ["tick"]
            ticks.append(int(envelope["id"].rpartition("@")[2]))


def _sent(app: CloudQ) -> int:
    stats = app.transport.stats("default")
    return stats.visible + stats.in_flight


def _assert_every_tick_once(ticks: list[int], at_least: int, twice: int = 0) -> None:
    """Every tick from the first to the last, each once (``twice``: at most so many sent a
    second time, under the same task id, so they run once)."""
    assert len(ticks) >= at_least, ticks
    assert len(ticks) - len(set(ticks)) <= twice, f"a tick was sent twice: {ticks}"
    expected = list(range(ticks[0], ticks[-1] + 1, INTERVAL))
    assert sorted(set(ticks)) == expected, f"a tick is missing: {ticks}"


def test_two_beats_send_each_tick_exactly_once(
    e2e_app: CloudQ, start_ticking_beat: Callable[[], subprocess.Popen[str]]
) -> None:
    # Given two beats of the same app
    beats = [start_ticking_beat(), start_ticking_beat()]
    # When three ticks have passed
    assert wait_until(lambda: _sent(e2e_app) >= 3, timeout=30)
    for beat in beats:
        beat.send_signal(signal.SIGTERM)
        assert beat.wait(timeout=10) == 0
    # Then each tick is one message
    _assert_every_tick_once(_ticks(e2e_app), at_least=3)


def test_killing_one_beat_loses_no_tick(
    e2e_app: CloudQ, start_ticking_beat: Callable[[], subprocess.Popen[str]]
) -> None:
    doomed, survivor = start_ticking_beat(), start_ticking_beat()
    assert wait_until(lambda: _sent(e2e_app) >= 1, timeout=30)
    # When one beat is killed mid-run (possibly holding the claim of a tick)
    time.sleep(INTERVAL * 0.5)
    doomed.kill()
    # Then the other goes on sending every tick (a claimed one after its lease)
    assert wait_until(lambda: _sent(e2e_app) >= 5, timeout=40)
    time.sleep(1)
    survivor.send_signal(signal.SIGTERM)
    assert survivor.wait(timeout=10) == 0
    # (a beat killed between sending a tick and recording it lets the other send it again)
    _assert_every_tick_once(_ticks(e2e_app), at_least=5, twice=1)
