"""``cloudq infra render``: templates with every part named from the app, and bad input refused
in one line with nothing written (cfn-lint checks the templates in tests/deploy)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cloudq import CloudQ
from cloudq.infra import app_resources
from cloudq.infra.render import render
from tests.tasks import make_app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = "examples.shop.tasks:app"


def cloudq(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloudq", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), env.pop("PYTHONPATH", "")]), **env},
    )


def several_queues_app() -> CloudQ:
    """FIFO, Lambda queues, several queues, a priority lane with a concurrency of its own,
    results off."""
    app = make_app(
        "lintapp",
        backend=None,
        lambda_queues=("orders.fifo", "reports"),
        lambda_timeout=5,
        priority_queues=("reports",),
        lambda_queue_concurrency={"reports-high": 20},
    )

    @app.task(name="report", queue="reports")
    def report(day: str) -> str:
        return day

    @app.task(name="resize", queue="images")
    def resize(key: str) -> str:
        return key

    return app


def test_the_template_has_every_part_named_from_the_app() -> None:
    resources = app_resources(several_queues_app(), "tests.tasks:app")
    body = yaml.safe_load(render(resources, "cloudformation"))["Resources"]
    kinds = {name: value["Type"] for name, value in body.items()}
    # queues with dead-letter queues and redrive; FIFO where the name says so
    fifo = body["OrdersFifoQueue"]["Properties"]
    assert (fifo["QueueName"], fifo["FifoQueue"]) == ("lintapp-orders.fifo", True)
    assert body["OrdersFifoDeadLetterQueue"]["Properties"]["QueueName"] == "lintapp-orders-dlq.fifo"
    assert fifo["RedrivePolicy"]["maxReceiveCount"] == resources.queues[2].max_receive_count
    # one mapping per Lambda queue and priority lane, partial batch responses
    mappings = [
        value["Properties"] for value in body.values() if value["Type"].endswith("EventSourceMapping")
    ]
    assert len(mappings) == 3
    assert all(mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"] for mapping in mappings)
    # ECS workers for the other queues, behind the condition the emulator turns off
    command = body["WorkerTaskDefinition"]["Properties"]["ContainerDefinitions"][0]["Command"]
    assert command[:5] == ["cloudq", "worker", "tests.tasks:app", "-Q", "default,images"]
    ecs = [
        name for name, kind in kinds.items() if kind.startswith(("AWS::ECS", "AWS::ApplicationAutoScaling"))
    ]
    assert ecs and all(body[name]["Condition"] == "WithWorkerService" for name in ecs)
    assert "ResultTable" not in body


def test_iam_lists_actions_on_the_apps_own_arns_only() -> None:
    documents = json.loads(render(app_resources(make_app("shop")), "iam"))
    statements = [
        *documents["WorkerRole"]["PolicyDocument"]["Statement"],
        *documents["ProducerPolicy"]["PolicyDocument"]["Statement"],
    ]
    own_role = "${SchedulerRole.Arn}"  # the stack's Scheduler role (Fn::Sub of its Arn)
    for statement in statements:
        assert "*" not in statement["Action"] and "*" not in statement["Resource"]
        assert all(
            arn == own_role
            or arn.rsplit(":", 1)[-1].removeprefix("table/").removeprefix("schedule/").startswith("shop-")
            for arn in statement["Resource"]
        )
    producer = documents["ProducerPolicy"]["PolicyDocument"]["Statement"]
    assert [s["Action"] for s in producer] == [
        ["sqs:GetQueueUrl", "sqs:SendMessage"],
        ["dynamodb:BatchGetItem", "dynamodb:GetItem"],
        ["scheduler:CreateSchedule", "scheduler:DeleteSchedule"],
        ["iam:PassRole"],
    ]
    # the producers manage the schedules of the app's group only, and pass its role to Scheduler only
    assert producer[2]["Resource"] == [
        "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/shop-cloudq/*"
    ]
    assert producer[3]["Resource"] == [own_role]
    assert producer[3]["Condition"] == {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}


def _one_line_exit_2(done: subprocess.CompletedProcess[str], message: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert message in line


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("raise RuntimeError('no database configured')", "RuntimeError: no database configured"),
        ("import no_such_dependency", "No module named 'no_such_dependency'"),
        ("x = 1 / 0", "ZeroDivisionError"),
    ],
)
def test_an_app_that_cannot_be_imported_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, source: str, message: str
) -> None:
    (tmp_path / "broken_app.py").write_text(source + "\n")
    output = tmp_path / "out.yml"
    done = cloudq("infra", "render", "--app", "broken_app:app", "-o", str(output), PYTHONPATH=str(tmp_path))
    _one_line_exit_2(done, message)
    assert not output.exists()


def test_an_unknown_format_is_one_line_exit_2_and_nothing_written(tmp_path: Path) -> None:
    output = tmp_path / "out.yml"
    done = cloudq("infra", "render", "--app", EXAMPLE, "--format", "terraform", "-o", str(output))
    _one_line_exit_2(done, "unknown format 'terraform'; choose one of cloudformation, serverless, iam")
    assert not output.exists()


def test_a_task_timeout_over_the_lambda_timeout_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path,
) -> None:
    output = tmp_path / "out.yml"
    done = cloudq(
        "infra",
        "render",
        "--app",
        "tests.tasks:app",
        "-o",
        str(output),
        CLOUDQ_LAMBDA_QUEUES="default",
        CLOUDQ_LAMBDA_TIMEOUT="1",
    )
    _one_line_exit_2(done, "task 'add' on Lambda queue 'default' needs 2 s")
    assert not output.exists()
