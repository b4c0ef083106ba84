"""``cloudq status --cost`` on ministack: the metrics a real account's CloudWatch would hold
for an hour of the app (put first, as AWS would publish them), then the documented figures
(the same hour as tests/unit/test_cost.py computes by hand)."""

from __future__ import annotations

import datetime as dt
import json

import boto3

from cloudq import CloudQ
from cloudq.infra import app_resources
from tests.cli_helpers import cloudq


def put_an_hour_of_metrics(app: CloudQ) -> None:
    """1,000 tasks on the standard queue and 100 on the FIFO one, 720 empty receives each
    (a worker polling every 5 s), 2,200 DynamoDB read and write units; 10 minutes ago."""
    resources = app_resources(app)
    assert resources.table is not None
    per_queue = {False: 1000.0, True: 100.0}
    when = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)
    client = boto3.client("cloudwatch")
    for queue in resources.queues:
        data = [
            {
                "MetricName": name,
                "Dimensions": [{"Name": "QueueName", "Value": queue.name}],
                "Value": value,
                "Unit": "Count",
                "Timestamp": when,
            }
            for name, value in (
                ("NumberOfMessagesSent", per_queue[queue.fifo]),
                ("NumberOfMessagesReceived", per_queue[queue.fifo]),
                ("NumberOfMessagesDeleted", per_queue[queue.fifo]),
                ("NumberOfEmptyReceives", 720.0),
            )
        ]
        client.put_metric_data(Namespace="AWS/SQS", MetricData=data)
    table = [{"Name": "TableName", "Value": resources.table.name}]
    client.put_metric_data(
        Namespace="AWS/DynamoDB",
        MetricData=[
            {"MetricName": name, "Dimensions": table, "Value": 2200.0, "Unit": "Count", "Timestamp": when}
            for name in ("ConsumedReadCapacityUnits", "ConsumedWriteCapacityUnits")
        ],
    )


def test_status_cost_prints_the_documented_figures(e2e_app: CloudQ) -> None:
    # Given an hour of metrics in the emulator's CloudWatch
    put_an_hour_of_metrics(e2e_app)
    # When cloudq status --cost reads the last hour
    done = cloudq("status", "--app", "tests.tasks:app", "--cost", "--window", "60")
    assert done.returncode == 0, done.stderr
    # Then it prints the hand-computed figures (tests/unit/test_cost.py)
    assert "(1,100 tasks finished)" in done.stdout
    assert "per million tasks: $2.73" in done.stdout
    assert "idle, per day:     $0.0156" in done.stdout
    assert "ignore_result=True: -$0.6250 per million tasks" in done.stdout
    # and --json has the same figures for scripts
    report = json.loads(
        cloudq("status", "--app", "tests.tasks:app", "--cost", "--window", "60", "--json").stdout
    )
    assert round(report["per_million_tasks"], 4) == 2.7273 and report["tasks"] == 1100


def test_no_metrics_is_na_with_the_reason(e2e_app: CloudQ) -> None:
    done = cloudq("status", "--app", "tests.tasks:app", "--cost", "--window", "5")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("cost: n/a: CloudWatch has no SQS, DynamoDB or Lambda datapoint")
