"""``cloudq infra render`` with a payload bucket and periodic tasks: the bucket's lifecycle
rules (the emulator stores them but never expires objects, so their prefixes and days are
checked here, in the template), one Scheduler schedule per periodic task with its fixed body,
the Scheduler role, and what AWS cannot do refused in one clear error."""

from __future__ import annotations

import json

import pytest
import yaml

from cloudq import CloudQ, Message
from cloudq.core.errors import ConfigurationError
from cloudq.infra import app_resources
from cloudq.infra.render import render
from tests.tasks import make_app


def _app(**settings: object) -> CloudQ:
    options = {"payload_store": "s3://sched-payloads/data/cloudq", "result_ttl": 3 * 86_400, **settings}
    app = make_app("sched", **options)
    app.add_periodic(
        app.tasks["add"], "cron(0 12 * * ? *)", args=[1, 2], name="noon", timezone="Europe/Paris"
    )
    app.add_periodic(app.tasks["record"], "rate(5 minutes)", kwargs={"tag": "tick"})
    return app


def _template(app: CloudQ) -> dict[str, object]:
    return yaml.safe_load(render(app_resources(app), "cloudformation"))  # type: ignore[no-any-return]


def test_the_bucket_expires_arguments_and_results_under_the_stores_prefix() -> None:
    bucket = _template(_app())["Resources"]["PayloadBucket"]  # type: ignore[index]
    assert bucket["Properties"]["BucketName"] == "sched-payloads"
    assert bucket["Properties"]["LifecycleConfiguration"]["Rules"] == [
        {
            "Id": "cloudq-arguments",
            "Status": "Enabled",
            "Prefix": "data/cloudq/args/",
            "ExpirationInDays": 15,
        },
        {
            "Id": "cloudq-results",
            "Status": "Enabled",
            "Prefix": "data/cloudq/results/",
            "ExpirationInDays": 4,
        },
    ]


def test_results_kept_forever_keep_their_objects() -> None:
    rules = _template(_app(result_ttl=0))["Resources"]["PayloadBucket"]["Properties"]  # type: ignore[index]
    assert [rule["Id"] for rule in rules["LifecycleConfiguration"]["Rules"]] == ["cloudq-arguments"]


def test_each_periodic_task_is_a_schedule_sending_its_fixed_body_to_its_queue() -> None:
    resources = _template(_app())["Resources"]
    noon = resources["NoonSchedule"]["Properties"]  # type: ignore[index]
    assert (noon["ScheduleExpression"], noon["ScheduleExpressionTimezone"]) == (
        "cron(0 12 * * ? *)",
        "Europe/Paris",
    )
    assert noon["Target"]["Arn"] == {"Fn::GetAtt": ["DefaultQueue", "Arn"]}
    # the body has no id: each tick's task id is its SQS message id
    body = json.loads(noon["Target"]["Input"])
    assert body == {"v": 1, "task": "add", "args": [1, 2], "kwargs": {}}
    assert Message.decode(noon["Target"]["Input"], "sqs-message-1").id == "sqs-message-1"
    assert "RecordSchedule" in resources  # type: ignore[operator]
    role = resources["SchedulerRole"]["Properties"]  # type: ignore[index]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": ["scheduler.amazonaws.com"]
    }


def test_seconds_and_fifo_queues_are_refused_for_aws() -> None:
    seconds = make_app("secs")
    seconds.add_periodic(seconds.tasks["noop"], 30)
    with pytest.raises(ConfigurationError, match="finest rate is rate\\(1 minute\\)"):
        app_resources(seconds)
    fifo = make_app("fifo")
    fifo.add_periodic(fifo.tasks["ordered"], "rate(1 hour)", args=["a"])
    with pytest.raises(ConfigurationError, match="FIFO queue 'orders.fifo'"):
        app_resources(fifo)


def test_the_iam_lets_workers_and_producers_use_only_the_stores_prefix() -> None:
    documents = json.loads(render(app_resources(_app()), "iam"))
    worker = documents["WorkerRole"]["PolicyDocument"]["Statement"]
    producer = documents["ProducerPolicy"]["PolicyDocument"]["Statement"]
    payloads = "arn:${AWS::Partition}:s3:::sched-payloads/data/cloudq/*"
    assert {
        "Sid": "Payloads",
        "Effect": "Allow",
        "Action": ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
        "Resource": [payloads],
    } in worker
    assert {
        "Sid": "Payloads",
        "Effect": "Allow",
        "Action": ["s3:GetObject", "s3:PutObject"],
        "Resource": [payloads],
    } in producer
    assert documents["SchedulerRole"]["PolicyDocument"]["Statement"][0]["Action"] == ["sqs:SendMessage"]
