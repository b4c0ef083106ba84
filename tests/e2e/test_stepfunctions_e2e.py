"""Step Functions runs cloudq tasks through ``.waitForTaskToken`` states (issue 27), on
ministack's Step Functions: its ``sqs:sendMessage.waitForTaskToken`` integration puts the
state's ``MessageBody`` on the queue and waits for ``SendTaskSuccess``/``SendTaskFailure``.

ministack records heartbeats but does not enforce ``HeartbeatSeconds``, so the proof of the
heartbeats is their count, at the HTTP level: the worker process and the Lambda function each
talk to AWS through a counting proxy (``bench.counting_proxy``), whose calls are also checked
against the rendered IAM, as in the deploy e2e (``test_deploy_e2e``).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from bench.counting_proxy import CountingProxy
from cloudq.infra import app_resources
from cloudq.infra.iam import STEPFUNCTIONS_ACTIONS, iam_documents
from cloudq_emulator.server import MinistackServer
from tests.e2e.conftest import LambdaFactory
from tests.e2e.test_deploy_e2e import iam_action
from tests.processes import WorkerFactory

WAIT_FOR_TOKEN = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
HEARTBEAT = "AWSStepFunctions.SendTaskHeartbeat"
#: The worker's queue; the Lambda function consumes ``default``.
WORKER_QUEUE = "sfn"
TASK_SECONDS = 6


def task_state(queue_url: str, body: dict[str, Any], heartbeat: int | None = None) -> dict[str, Any]:
    """A ``.waitForTaskToken`` state sending ``body`` (README, Step Functions) to the queue."""
    body = {**body, "task_token.$": "$$.Task.Token"}
    state: dict[str, Any] = {"Type": "Task", "Resource": WAIT_FOR_TOKEN, "TimeoutSeconds": 60}
    if heartbeat is not None:
        state["HeartbeatSeconds"] = heartbeat
        body["heartbeat_seconds"] = heartbeat
    state["Parameters"] = {"QueueUrl": queue_url, "MessageBody": body}
    return state


def run_machine(definition: dict[str, Any], document: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    """Create the state machine, run it once on ``document``, return the ended execution."""
    states = boto3.client("stepfunctions")
    machine = states.create_state_machine(
        name=f"cloudq-{uuid.uuid4().hex[:8]}",
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::000000000000:role/cloudq-states",
    )["stateMachineArn"]
    execution = states.start_execution(stateMachineArn=machine, input=json.dumps(document))["executionArn"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described: dict[str, Any] = states.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.2)
    raise AssertionError(f"execution {execution} still running after {timeout} s")


@pytest.fixture
def proxies(ministack_server: MinistackServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, CountingProxy]]:
    """A counting proxy for the worker process and one for the Lambda function; the app
    serves Step Functions on the worker's queue and the Lambda function's."""
    monkeypatch.setenv("CLOUDQ_STEPFUNCTIONS_QUEUES", f"default,{WORKER_QUEUE}")
    started = {name: CountingProxy(ministack_server.endpoint_url).start() for name in ("worker", "lambda")}
    yield started
    for proxy in started.values():
        proxy.stop()


def deploy(
    lambda_app: LambdaFactory, start_worker: WorkerFactory, proxies: dict[str, CountingProxy], timeout: int = 3
) -> tuple[Any, dict[str, str]]:
    """The test app deployed (Lambda on ``default``) and a worker on ``sfn``: the app and the
    URLs of the two queues."""
    app = lambda_app(timeout=timeout, function_endpoint_url=proxies["lambda"].endpoint_url)
    start_worker(
        "-Q",
        WORKER_QUEUE,
        env={
            "AWS_ENDPOINT_URL": proxies["worker"].endpoint_url,
            "CLOUDQ_STEPFUNCTIONS_QUEUES": f"default,{WORKER_QUEUE}",
        },
    )
    sqs = boto3.client("sqs")
    urls = {
        queue: sqs.get_queue_url(QueueName=app.physical_queue_name(queue))["QueueUrl"]
        for queue in ("default", WORKER_QUEUE)
    }
    return app, urls


def assert_allowed_by_the_rendered_iam(app: Any, proxies: dict[str, CountingProxy]) -> Counter[str]:
    """Every call of the worker and the function is allowed to the rendered worker role; the
    Step Functions calls made, by name."""
    policy = iam_documents(app_resources(app, "tests.tasks:app"))["WorkerRole"]["PolicyDocument"]
    allowed = {action for statement in policy["Statement"] for action in statement["Action"]}
    calls: Counter[str] = Counter()
    for proxy in proxies.values():
        calls.update(proxy.reset())
    made = {iam_action(target) for target in calls}
    assert made <= allowed, sorted(made - allowed)
    return Counter({iam_action(target): count for target, count in calls.items() if target.startswith("AWS")})


def assert_beats_every_two_seconds(proxy: CountingProxy) -> None:
    """At least one SendTaskHeartbeat per 2 s of the 6 s task: 3 or more, none 2 s apart."""
    beats = proxy.times(HEARTBEAT)
    gaps = [later - earlier for earlier, later in zip(beats, beats[1:], strict=False)]
    assert len(beats) >= TASK_SECONDS // 2, beats
    assert max(gaps) <= 2.0, gaps


def test_two_task_states_run_on_a_worker_then_on_lambda_with_heartbeats(
    lambda_app: LambdaFactory, start_worker: WorkerFactory, proxies: dict[str, CountingProxy]
) -> None:
    # Given a worker on one queue and the Lambda function on the other, behind counting proxies
    app, urls = deploy(lambda_app, start_worker, proxies, timeout=TASK_SECONDS + 6)
    # And a state machine: a 6 s task on the worker, a Choice on its result, a 6 s task on
    # Lambda, both under HeartbeatSeconds=2
    first = {"task": "slow_add", "args.$": "$.numbers", "kwargs": {"seconds": TASK_SECONDS}}
    second = {"task": "slow_add", "args.$": "States.Array($, 10)", "kwargs": {"seconds": TASK_SECONDS}}
    definition = {
        "StartAt": "Add",
        "States": {
            "Add": {**task_state(urls[WORKER_QUEUE], first, heartbeat=2), "Next": "IsFive"},
            "IsFive": {
                "Type": "Choice",
                "Choices": [{"Variable": "$", "NumericEquals": 5, "Next": "AddTen"}],
                "Default": "NotFive",
            },
            "NotFive": {"Type": "Fail", "Error": "NotFive", "Cause": "the first result is not 5"},
            "AddTen": {**task_state(urls["default"], second, heartbeat=2), "End": True},
        },
    }
    # When it runs
    execution = run_machine(definition, {"numbers": [2, 3]})
    # Then it succeeds with the second task's result as its output
    assert execution["status"] == "SUCCEEDED", execution
    assert json.loads(execution["output"]) == 15
    # And each task beat at least every 2 s, on the worker and on Lambda
    assert_beats_every_two_seconds(proxies["worker"])
    assert_beats_every_two_seconds(proxies["lambda"])
    # And every call is allowed by the rendered IAM, which grants the Step Functions calls
    states = assert_allowed_by_the_rendered_iam(app, proxies)
    assert states["states:SendTaskSuccess"] == 2
    assert set(states) <= set(STEPFUNCTIONS_ACTIONS)


def test_a_task_that_fails_finally_fails_the_execution_with_its_error_and_cause(
    lambda_app: LambdaFactory, start_worker: WorkerFactory, proxies: dict[str, CountingProxy]
) -> None:
    # Given a state running a task that fails on each of its 3 attempts (2 retries)
    app, urls = deploy(lambda_app, start_worker, proxies)
    body = {"task": "always_fails", "kwargs": {"tag": "sfn"}}
    definition = {"StartAt": "Fail", "States": {"Fail": {**task_state(urls[WORKER_QUEUE], body), "End": True}}}
    # When it runs
    execution = run_machine(definition, {})
    # Then the execution fails with the task's error type and message
    assert execution["status"] == "FAILED", execution
    assert execution["error"] == "FlakyError"
    assert execution["cause"] == "failing on purpose sfn (gave up after 3 attempts)"
    # And Step Functions heard of the final failure only, not of the retries
    states = assert_allowed_by_the_rendered_iam(app, proxies)
    assert states == Counter({"states:SendTaskFailure": 1})
