"""Schedules (AWS expressions and seconds), periodic task registration, and the beat's lock."""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest

from cloudq import CloudQ
from cloudq.core.clock import ManualClock
from cloudq.core.errors import ConfigurationError, TaskRegistrationError
from cloudq.core.schedules import parse_schedule
from cloudq.runtime.beat import BEAT_LEASE_SECONDS, Beat, tick_key
from tests.cli_helpers import cloudq
from tests.tasks import make_app

NOON = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.timezone.utc).timestamp()


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("rate(1 minute)", 60), ("rate(5 minutes)", 300), ("rate(2 hours)", 7200), ("rate(1 day)", 86400)],
)
def test_rates_tick_at_multiples_of_their_interval(expression: str, seconds: int) -> None:
    schedule = parse_schedule(expression)
    assert schedule.next_after(NOON) == NOON + seconds or schedule.next_after(NOON) % seconds == 0
    assert schedule.next_after(NOON + 1) % seconds == 0 and schedule.aws_expression() == expression


def test_seconds_are_for_beat_and_refused_for_aws() -> None:
    schedule = parse_schedule(10)
    assert schedule.expression == "rate(10 seconds)" and schedule.next_after(NOON + 3) == NOON + 10
    assert parse_schedule("rate(10 seconds)") == schedule
    with pytest.raises(ConfigurationError, match="finest rate is rate\\(1 minute\\).*cloudq beat"):
        schedule.aws_expression()


def test_cron_ticks_in_its_time_zone() -> None:
    daily = parse_schedule("cron(0 12 * * ? *)")
    assert daily.next_after(NOON) == NOON + 86400
    paris = parse_schedule("cron(0 12 * * ? *)", "Europe/Paris")  # 11:00 UTC in November
    assert paris.next_after(NOON) == NOON + 86400 - 3600
    weekdays = parse_schedule("cron(30 9 ? * MON-FRI *)")
    friday = dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.timezone.utc).timestamp()
    monday = dt.datetime(2026, 11, 30, 9, 30, tzinfo=dt.timezone.utc).timestamp()
    assert weekdays.next_after(friday) == monday
    every_quarter = parse_schedule("cron(0/15 * * * ? *)")
    assert every_quarter.next_after(NOON + 60) == NOON + 900


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("rate(5 minute)", "with more"),
        ("rate(1 minutes)", "with one"),
        ("every 5 minutes", "use 'rate"),
        ("cron(0 12 * * *)", "six fields"),
        ("cron(0 12 * * * *)", "must be '\\?'"),
        ("cron(0 25 * * ? *)", "out of range"),
        (0, "at least 1"),
        (1.5, "whole number"),
    ],
)
def test_bad_schedules_are_refused_with_the_reason(value: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_schedule(value)  # type: ignore[arg-type]


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="unknown time zone"):
        parse_schedule("rate(1 hour)", "Mars/Olympus")


def test_aws_only_cron_features_render_but_beat_refuses_them() -> None:
    last_friday = parse_schedule("cron(0 12 ? * 6L *)")
    assert last_friday.aws_expression() == "cron(0 12 ? * 6L *)"
    with pytest.raises(ConfigurationError, match="EventBridge Scheduler only"):
        last_friday.next_after(NOON)


def test_periodic_arguments_that_do_not_fit_are_refused_when_the_app_loads() -> None:
    app = make_app("periodic", broker="memory://", backend="memory://")
    with pytest.raises(TaskRegistrationError, match="periodic task 'add'"):
        app.add_periodic(app.tasks["add"], "rate(1 hour)", args=[1])
    with pytest.raises(TaskRegistrationError, match="above @app.task"):
        app.periodic("rate(1 hour)")(lambda: None)  # type: ignore[arg-type]
    app.add_periodic(app.tasks["add"], "rate(1 hour)", args=[1, 2])
    with pytest.raises(TaskRegistrationError, match="registered twice"):
        app.add_periodic(app.tasks["add"], "rate(2 hours)", args=[1, 2])


def _beat_app(clock: ManualClock) -> CloudQ:
    """An app whose beat, broker and result backend share ``clock`` (one timeline)."""
    app = make_app("beat", broker="memory://", backend="memory://", clock=clock)
    app.add_periodic(app.tasks["add"], 10, args=[1, 2], name="adder")
    return app


def _sent(app: CloudQ) -> list[str]:
    """The task ids of every message on the default queue (received and deleted: each is seen once)."""
    ids: list[str] = []
    while got := app.transport.receive("default", 10, wait_seconds=0):
        ids += [json.loads(message.body)["id"] for message in got]
        app.transport.ack("default", [message.receipt_handle for message in got])
    return ids


def test_two_beats_send_each_tick_once() -> None:
    app = _beat_app(ManualClock(NOON))
    first, second = Beat(app, owner="a"), Beat(app, owner="b")
    periodic = app.periodic_tasks["adder"]
    for tick in (NOON, NOON + 10, NOON + 20):
        assert first.send_tick(periodic, tick) is None
        assert second.send_tick(periodic, tick) is None  # found done
    assert _sent(app) == [f"adder@{int(t)}" for t in (NOON, NOON + 10, NOON + 20)]


def test_a_tick_claimed_by_a_beat_that_died_is_sent_by_another_after_the_lease() -> None:
    clock = ManualClock(NOON)
    app = _beat_app(clock)
    periodic = app.periodic_tasks["adder"]
    survivor = Beat(app, owner="b")
    # Given beat "a" claimed the tick and died before sending it
    survivor.backend.claim(tick_key(periodic, NOON), "cloudq.runtime.beat", "a", BEAT_LEASE_SECONDS, NOON)
    # When the survivor tries: it waits for the lease
    assert survivor.send_tick(periodic, NOON) == pytest.approx(BEAT_LEASE_SECONDS)
    assert _sent(app) == []
    # Then after the lease it sends the tick
    clock.advance(BEAT_LEASE_SECONDS + 0.1)
    assert survivor.send_tick(periodic, NOON) is None
    assert _sent(app) == [f"adder@{int(NOON)}"]


def test_missed_ticks_are_sent_only_when_asked() -> None:
    # Given a beat that sent the tick at NOON (beat, broker and results on one clock)
    clock = ManualClock(NOON)
    app = _beat_app(clock)
    periodic = app.periodic_tasks["adder"]
    Beat(app).send_tick(periodic, NOON)
    # When no beat runs for 35 s: ticks NOON+10, +20, +30 are missed
    clock.advance(35)
    later = clock.time()
    # Then a beat sends them only with catch-up
    assert Beat(app).first_ticks(later) == {"adder": []}
    caught_up = Beat(app, catch_up=True).first_ticks(later)
    assert caught_up == {"adder": [NOON + 10, NOON + 20, NOON + 30]}


def _run_until_sent(beat: Beat, count: int) -> None:
    """Run ``beat`` in a thread until it has sent ``count`` ticks (at most 5 s), then stop it."""
    stop = threading.Event()
    thread = threading.Thread(target=beat.run, args=(stop,))
    thread.start()
    for _ in range(500):
        if beat.sent >= count:
            break
        threading.Event().wait(0.01)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_catch_up_after_a_three_day_outage_sends_exactly_the_72_missed_hourly_ticks() -> None:
    # Given an hourly task whose beat sent the tick at NOON (everything on one clock)
    clock = ManualClock(NOON)
    app = make_app("catchup", broker="memory://", backend="memory://", clock=clock)
    app.add_periodic(app.tasks["add"], "rate(1 hour)", args=[1, 2], name="hourly")
    Beat(app).send_tick(app.periodic_tasks["hourly"], NOON)
    assert _sent(app) == [f"hourly@{int(NOON)}"]
    # When no beat runs for 3 days, and one then starts with --catch-up half an hour later
    clock.advance(3 * 86_400 + 1_800)
    beat = Beat(app, catch_up=True)
    _run_until_sent(beat, 72)
    # Then exactly the 72 missed ticks were sent, once each, and nothing else
    assert sorted(_sent(app)) == [f"hourly@{int(NOON) + 3600 * hour}" for hour in range(1, 73)]
    assert beat.sent == 72


def test_a_beat_runs_until_stopped_and_its_tasks_run() -> None:
    from cloudq.testing import drain

    app = make_app("beatrun", broker="memory://", backend="memory://")
    app.add_periodic(app.tasks["add"], 1, args=[2, 3])
    runner = Beat(app)
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,))
    thread.start()
    threading.Event().wait(2.2)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive() and runner.sent >= 1
    assert drain(app) == runner.sent


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("beat",), "Missing option '--app'"),
        (("beat", "--app", "nope"), "must look like 'module:app'"),
        (("beat", "--app", "tests.beat_apps:no_periodic"), "has no periodic tasks"),
        (("beat", "--app", "tests.beat_apps:no_backend"), "needs a result backend for its lock"),
    ],
)
def test_beat_refuses_bad_input_in_one_line_with_exit_2(args: tuple[str, ...], message: str) -> None:
    done = cloudq(*args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    # cloudq's own errors are one line; click's usage errors end in one "Error:" line
    assert len(lines) == 1 or lines[-1] == f"Error: {message}."
