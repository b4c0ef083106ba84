"""Schedules made at run time (``app.schedules``) in running apps.

- On Redis, two real ``cloudq beat`` processes read the schedules from the result backend: a
  schedule created while they run is sent once per tick, an ``at()`` one once (then it is
  deleted), a deleted one no more; ``cloudq schedules list|delete`` see the same records.
- On ministack (SQS), the schedules are EventBridge Scheduler schedules in the app's group,
  from its deployed stack. ministack sweeps its schedules every 10 s (UTC) and counts a
  ``rate()`` from the schedule's creation, so a ``rate(1 minute)`` first fires 60-70 s after
  it is made: the default run checks that such a schedule reaches ministack's Scheduler and is
  deleted from it, and that an ``at()`` schedule fires once and is deleted; with
  ``CLOUDQ_SCHEDULES=full`` (``make schedules``) the same test also waits for the
  ``rate(1 minute)`` schedule to fire, then, deleted, for it not to fire again (about 2.5 min).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

import boto3

from cloudq import CloudQ, at
from cloudq.infra import app_resources
from cloudq_emulator.provision import provision
from cloudq_emulator.server import MinistackServer
from tests.e2e.conftest import BeatFactory, WorkerFactory
from tests.processes import side_effects, wait_until
from tests.tasks import make_app

FULL = os.environ.get("CLOUDQ_SCHEDULES") == "full"
#: ministack's Scheduler sweep (``ministack/services/scheduler.py``: ``_SCHEDULE_TICK_INTERVAL``).
SWEEP_SECONDS = 10


def _sent_ids(app: CloudQ) -> list[str]:
    """The task id of every message in the default queue (``<schedule>@<tick>``)."""
    ids: list[str] = []
    while got := app.transport.receive("default", 10, wait_seconds=0):
        ids += [json.loads(message.body)["id"] for message in got]
    return sorted(ids)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "cloudq", "schedules", *args, "--app", "tests.tasks:app"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def test_two_beats_on_redis_send_a_run_time_schedule_once_per_tick_and_an_at_once(
    redis_app: CloudQ, e2e_env: dict[str, str], start_beat: BeatFactory
) -> None:
    # Given two beats starting
    beats = [start_beat(), start_beat()]
    # When a schedule every 2 s and a one-off 2 s ahead are created through the API
    redis_app.schedules.create("every-2", redis_app.tasks["record"], "rate(2 seconds)", args=["tick"])
    moment = dt.datetime.fromtimestamp(int(time.time()) + 2, dt.timezone.utc)
    redis_app.schedules.create("once", redis_app.tasks["record"], at(moment), args=["once"])
    # Then the one-off is sent and deleted, and the CLI lists the other
    assert wait_until(lambda: [p.name for p in redis_app.schedules.list()] == ["every-2"], timeout=15)
    listed = _cli(e2e_env, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["name"] for line in listed.stdout.splitlines()] == ["every-2"]
    # And its ticks were sent once each, the one-off once
    assert wait_until(lambda: redis_app.transport.stats("default").visible >= 3, timeout=10)  # once + 2 ticks
    assert redis_app.schedules.delete("every-2")
    time.sleep(1.2)  # every beat has read the schedules since: none sends it any more
    sent = _sent_ids(redis_app)
    assert sent.count(f"once@{int(moment.timestamp())}") == 1, sent
    ticks = sorted(int(task_id.rpartition("@")[2]) for task_id in sent if task_id.startswith("every-2@"))
    assert len(ticks) >= 2 and ticks == list(range(ticks[0], ticks[-1] + 1, 2)), (
        f"a tick sent twice or missed: {ticks}"
    )
    # And once deleted, it is sent no more (a period later)
    time.sleep(2.2)
    assert _sent_ids(redis_app) == []
    for beat in beats:
        beat.send_signal(signal.SIGTERM)
        assert beat.wait(timeout=10) == 0


def _deployed(e2e_env: dict[str, str], ministack_server: MinistackServer) -> tuple[CloudQ, str]:
    """The test app's stack deployed; the app as a producer with the stack's Scheduler role."""
    resources = app_resources(make_app(e2e_env["CLOUDQ_TEST_APP"]))
    assert resources.schedule_group == f"{e2e_env['CLOUDQ_TEST_APP']}-cloudq"
    provision(resources, endpoint_url=ministack_server.endpoint_url)
    stacks = boto3.client("cloudformation").describe_stacks(StackName=resources.stack_name)["Stacks"]
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stacks[0]["Outputs"]}
    app = make_app(e2e_env["CLOUDQ_TEST_APP"], scheduler_role_arn=outputs["SchedulerRoleArn"])
    return app, resources.schedule_group


def test_on_ministack_an_at_schedule_fires_once_and_is_deleted_and_a_rate_one_fires_until_deleted(
    e2e_env: dict[str, str], ministack_server: MinistackServer, start_worker: WorkerFactory
) -> None:
    # Given the app's stack (its schedule group and Scheduler role) and a worker
    app, group = _deployed(e2e_env, ministack_server)
    start_worker()
    # When a one-off schedule is created for the next second, and a rate(1 minute) one
    moment = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1)
    app.schedules.create("once", app.tasks["record"], at(moment), args=["once"])
    app.schedules.create("minutely", app.tasks["record"], "rate(1 minute)", args=["minutely"])
    scheduler = boto3.client("scheduler")
    minutely = scheduler.get_schedule(Name="minutely", GroupName=group)
    assert (minutely["ScheduleExpression"], minutely["Target"]["Arn"].rpartition(":")[2]) == (
        "rate(1 minute)",
        app.physical_queue_name("default"),
    )
    # Then within a sweep the one-off fired, its task ran, and the schedule is gone
    assert wait_until(lambda: "once" in side_effects(e2e_env, "record"), timeout=SWEEP_SECONDS * 2 + 5)
    assert [p.name for p in app.schedules.list()] == ["minutely"]
    if FULL:  # and the rate schedule fires a minute after its creation (within a sweep)
        assert wait_until(
            lambda: "minutely" in side_effects(e2e_env, "record"), timeout=60 + SWEEP_SECONDS * 2
        )
    # And deleted, a schedule is gone from Scheduler (full: it fires no more over a period and a sweep)
    assert app.schedules.delete("minutely") and app.schedules.list() == []
    if FULL:
        time.sleep(60 + SWEEP_SECONDS * 2)
    assert sorted(side_effects(e2e_env, "record")) == (["minutely", "once"] if FULL else ["once"])
