"""Schedules made at run time (``app.schedules``, ``cloudq.app.schedules``): ``at()``, the
checks made at ``create``, EventBridge Scheduler on moto for an SQS app, the CLI's bad input
and what ``cloudq infra render`` adds for them."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import boto3
import pytest

from cloudq import CloudQ, ScheduleExistsError, at
from cloudq.core.clock import ManualClock
from cloudq.core.errors import ConfigurationError, TaskRegistrationError
from cloudq.core.schedules import parse_schedule
from cloudq.infra import app_resources
from cloudq.infra.cloudformation import template
from cloudq.runtime.beat import Beat
from tests.cli_helpers import cloudq
from tests.tasks import make_app

ROLE = "arn:aws:iam::123456789012:role/shop-scheduler"
MOMENT = dt.datetime(2030, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)


def test_at_is_one_tick_in_utc_and_a_naive_moment_is_in_the_time_zone() -> None:
    schedule = parse_schedule(at(MOMENT))
    assert (schedule.expression, schedule.timezone, schedule.one_off) == (
        "at(2030-05-06T07:08:09)",
        "UTC",
        True,
    )
    assert schedule.next_after(MOMENT.timestamp() - 1) == MOMENT.timestamp()
    assert schedule.next_after(MOMENT.timestamp()) == float("inf")
    paris = parse_schedule(at(dt.datetime(2030, 5, 6, 9, 8, 9)), "Europe/Paris")  # UTC+2 in May
    assert paris == schedule and parse_schedule("at(2030-05-06T07:08:09)") == schedule
    with pytest.raises(ConfigurationError, match="give a datetime"):
        at("tomorrow")  # type: ignore[arg-type]


def test_a_periodic_task_in_code_refuses_at() -> None:
    app = make_app("code", broker="memory://", backend="memory://")
    with pytest.raises(TaskRegistrationError, match="at\\(\\) is for app.schedules.create"):
        app.add_periodic(app.tasks["add"], at(MOMENT), args=[1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "schedule", "options", "error"),
    [
        ("bad name!", "rate(1 minute)", {}, "1-64 letters"),
        ("x" * 65, "rate(1 minute)", {}, "1-64 letters"),
        ("n", 10, {}, "use 'rate"),
        ("n", "every day", {}, "use 'rate"),
        ("n", "rate(1 minute)", {"timezone": "Mars/Base"}, "unknown time zone"),
        ("n", "rate(1 minute)", {"args": ["not", "ints", "extra"]}, "schedule 'n'"),
        ("n", "cron(0 12 L * ? *)", {}, "Scheduler only"),
    ],
)
def test_create_refuses_bad_input_in_one_clear_error(
    name: str, schedule: Any, options: dict[str, Any], error: str
) -> None:
    app = make_app("checks", broker="memory://", backend="memory://")
    with pytest.raises(ConfigurationError, match=error):
        app.schedules.create(name, app.tasks["add"], schedule, **options)
    assert app.schedules.list() == []


def test_a_taken_name_a_periodic_tasks_name_and_no_backend_are_refused() -> None:
    app = make_app("taken", broker="memory://", backend="memory://")
    app.add_periodic(app.tasks["add"], "rate(1 hour)", args=[1, 1], name="hourly")
    app.schedules.create("daily", app.tasks["add"], "rate(1 day)", args=[1, 2])
    with pytest.raises(ScheduleExistsError, match="exists"):
        app.schedules.create("daily", app.tasks["add"], "rate(2 days)", args=[1, 2])
    with pytest.raises(ScheduleExistsError, match="periodic task"):
        app.schedules.create("hourly", app.tasks["add"], "rate(1 day)", args=[1, 2])
    [daily] = app.schedules.list()
    assert (daily.name, daily.task, daily.queue, daily.schedule.expression, daily.args) == (
        "daily",
        "add",
        "default",
        "rate(1 day)",
        [1, 2],
    )
    assert app.schedules.delete("daily") and not app.schedules.delete("daily")
    resultless = make_app("resultless", broker="memory://", backend=None)
    with pytest.raises(ConfigurationError, match="result backend"):
        resultless.schedules.create("daily", resultless.tasks["add"], "rate(1 day)", args=[1, 2])


def test_a_task_by_name_the_app_does_not_know_goes_to_the_default_queue_unchecked() -> None:
    app = make_app("byname", broker="memory://", backend="memory://")
    made = app.schedules.create("remote", "billing.tasks.invoice", "rate(1 day)", kwargs={"month": 5})
    assert (made.task, made.queue, made.kwargs) == ("billing.tasks.invoice", "default", {"month": 5})


@pytest.fixture
def sqs_app(moto_aws: object) -> CloudQ:
    """An SQS app whose queues and schedule group exist (as its stack makes them), on moto."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    for queue in ("shop-default", "shop-orders.fifo"):
        attributes = {"FifoQueue": "true"} if queue.endswith(".fifo") else {}
        sqs.create_queue(QueueName=queue, Attributes=attributes)
    boto3.client("scheduler", region_name="us-east-1").create_schedule_group(Name="shop-cloudq")
    return make_app("shop", broker="sqs://", backend=None, scheduler_role_arn=ROLE)


def test_an_sqs_app_keeps_its_schedules_in_its_scheduler_group(sqs_app: CloudQ) -> None:
    # When an SQS app creates a rate and a one-off schedule
    assert sqs_app.schedules.store == "scheduler"
    sqs_app.schedules.create("tenant-7", sqs_app.tasks["add"], "rate(5 minutes)", args=[7, 0])
    sqs_app.schedules.create("once", sqs_app.tasks["echo"], at(MOMENT), kwargs={"value": "hi"})
    # Then they are Scheduler schedules of the app's group, sending a cloudq body to the queue
    scheduler = boto3.client("scheduler", region_name="us-east-1")
    found = scheduler.get_schedule(Name="tenant-7", GroupName="shop-cloudq")
    assert found["ScheduleExpression"] == "rate(5 minutes)" and found["Target"]["RoleArn"] == ROLE
    assert found["Target"]["Arn"] == "arn:aws:sqs:us-east-1:123456789012:shop-default"
    body = sqs_app.codec.decode(found["Target"]["Input"], broker_message_id="sqs-message-id")
    assert (body.task, body.args) == ("add", [7, 0])
    once = scheduler.get_schedule(Name="once", GroupName="shop-cloudq")
    assert (once["ScheduleExpression"], once["ActionAfterCompletion"]) == (
        "at(2030-05-06T07:08:09)",
        "DELETE",
    )
    # And the app lists them back, and deletes them
    listed = {
        p.name: (p.task, p.queue, p.schedule.expression, p.args, p.kwargs) for p in sqs_app.schedules.list()
    }
    assert listed == {
        "once": ("echo", "default", "at(2030-05-06T07:08:09)", ["hi"], {}),  # as the signature binds them
        "tenant-7": ("add", "default", "rate(5 minutes)", [7, 0], {}),
    }
    with pytest.raises(ScheduleExistsError):
        sqs_app.schedules.create("once", sqs_app.tasks["echo"], at(MOMENT))
    assert sqs_app.schedules.delete("once") and not sqs_app.schedules.delete("once")
    assert [p.name for p in sqs_app.schedules.list()] == ["tenant-7"]


def test_scheduler_refuses_seconds_fifo_queues_a_signing_app_and_a_missing_role(sqs_app: CloudQ) -> None:
    with pytest.raises(ConfigurationError, match="finest rate"):
        sqs_app.schedules.create("fast", sqs_app.tasks["add"], "rate(10 seconds)", args=[1, 2])
    with pytest.raises(ConfigurationError, match="FIFO"):
        sqs_app.schedules.create("fifo", sqs_app.tasks["ordered"], "rate(1 hour)", args=["t"])
    signing = make_app("shop", broker="sqs://", backend=None, scheduler_role_arn=ROLE, signing_keys=("k",))
    with pytest.raises(ConfigurationError, match="requires signatures.*schedule_store 'backend'"):
        signing.schedules.create("n", signing.tasks["add"], "rate(1 hour)", args=[1, 2])
    roleless = make_app("shop", broker="sqs://", backend=None)
    with pytest.raises(ConfigurationError, match="CLOUDQ_SCHEDULER_ROLE_ARN"):
        roleless.schedules.create("n", roleless.tasks["add"], "rate(1 hour)", args=[1, 2])


def test_render_gives_an_sqs_app_its_schedule_group_and_a_redis_app_none() -> None:
    body = template(app_resources(make_app("shop")))
    resources = body["Resources"]
    assert resources["ScheduleGroup"] == {
        "Type": "AWS::Scheduler::ScheduleGroup",
        "Properties": {"Name": "shop-cloudq"},
    }
    sends = resources["SchedulerRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0]
    assert [arn["Fn::Sub"].rsplit(":", 1)[-1] for arn in sends["Resource"]] == ["shop-default"]
    assert body["Outputs"]["SchedulerRoleArn"]["Value"] == {"Fn::GetAtt": ["SchedulerRole", "Arn"]}
    redis = template(app_resources(make_app("shop", broker="redis://127.0.0.1:6379/0")))
    assert "ScheduleGroup" not in redis["Resources"] and "SchedulerRole" not in redis["Resources"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("schedules", "list"), "Missing option '--app'"),
        (("schedules", "delete", "--app", "tests.beat_apps:no_backend"), "Missing argument 'NAMES...'"),
        (("schedules", "list", "--app", "tests.beat_apps:no_backend"), "has none (backend=None)"),
        (("schedules", "delete", "ghost", "--app", "tests.beat_apps:runtime"), "no schedule named ghost"),
    ],
)
def test_the_schedules_cli_refuses_bad_input_in_one_line_with_exit_2(
    args: tuple[str, ...], message: str
) -> None:
    done = cloudq(*args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_beat_sends_an_at_whose_moment_passed_unseen_and_follows_a_recreated_schedule() -> None:
    # Given an app whose run-time schedules live in its backend, and a one-off already due
    clock = ManualClock(MOMENT.timestamp() + 60)
    app = make_app("late", broker="memory://", backend="memory://", clock=clock)
    app.schedules.create("missed", app.tasks["add"], at(MOMENT), args=[1, 1])
    app.schedules.create("often", app.tasks["add"], "rate(10 seconds)", args=[2, 2])
    beat = Beat(app, owner="only")
    beat.start()
    # When a beat first runs, a minute after the one-off's moment
    beat.step()
    # Then it sends the one-off at once and deletes it
    first = app.transport.receive("default", 10, wait_seconds=0)
    assert [json.loads(m.body)["id"] for m in first] == [f"missed@{int(MOMENT.timestamp())}"]
    assert [p.name for p in app.schedules.list()] == ["often"]
    # And when the schedule is re-created with other arguments before its tick, the tick the
    # old one had due is not sent, and the next one carries the new arguments
    app.schedules.delete("often")
    app.schedules.create("often", app.tasks["add"], "rate(10 seconds)", args=[3, 3])
    clock.advance(10)
    beat.step()
    assert app.transport.receive("default", 10, wait_seconds=0) == []
    clock.advance(2)
    beat.step()
    [sent] = app.transport.receive("default", 10, wait_seconds=0)
    assert json.loads(sent.body)["args"] == [3, 3]
