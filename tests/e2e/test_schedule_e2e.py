"""A periodic task deployed as an EventBridge Scheduler schedule (the rendered template, as a
stack) fires in the emulator and its task runs on a worker: no beat involved. ministack sweeps
schedules every 10 s and counts a rate from the schedule's creation, so one tick of
``rate(1 minute)`` takes 60-70 s: one tick is all this test waits for."""

from __future__ import annotations

import pytest

from cloudq.infra import app_resources
from cloudq_emulator.provision import provision
from cloudq_emulator.server import MinistackServer
from tests.e2e.conftest import WorkerFactory
from tests.processes import wait_for_side_effect
from tests.tasks import make_app


def test_a_deployed_rate_schedule_runs_its_task(
    e2e_env: dict[str, str],
    ministack_server: MinistackServer,
    monkeypatch: pytest.MonkeyPatch,
    start_worker: WorkerFactory,
) -> None:
    # Given the test app with a periodic task every minute, deployed as a stack
    monkeypatch.setenv("CLOUDQ_TEST_PERIODIC", "rate(1 minute)")
    e2e_env["CLOUDQ_TEST_PERIODIC"] = "rate(1 minute)"
    app = make_app(e2e_env["CLOUDQ_TEST_APP"])
    resources = app_resources(app)
    assert [schedule.expression for schedule in resources.schedules] == ["rate(1 minute)"]
    deployment = provision(resources, endpoint_url=ministack_server.endpoint_url)
    assert "TickerSchedule" in deployment.physical_ids and "SchedulerRole" in deployment.physical_ids
    # When a worker runs
    start_worker()
    # Then within one tick (and a sweep) the scheduler's message ran the task
    assert wait_for_side_effect(e2e_env, "record", timeout=100) == ["tick"]
