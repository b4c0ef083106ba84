"""Step Functions runs cloudq tasks through ``.waitForTaskToken`` states (issue 27), on
ministack's Step Functions: its ``sqs:sendMessage.waitForTaskToken`` integration puts the
state's ``MessageBody`` on the queue and waits for ``SendTaskSuccess``/``SendTaskFailure``.

ministack records heartbeats but does not enforce ``HeartbeatSeconds``, so the proof of the
heartbeats is their count, at the HTTP level: the worker process and the Lambda function each
talk to AWS through a counting proxy (``bench.counting_proxy``), whose calls are also checked
against the rendered IAM, as in the deploy e2e (``test_deploy_e2e``).

One scenario (one stack, one worker: the default run's budget is tight), checked by the tests
below: two states in sequence (the worker, then Lambda), a state whose task fails finally, and
a body whose token Step Functions no longer knows. The task on the worker runs 6 s under
``HeartbeatSeconds=2``; the one on Lambda 3 s, or 6 s with ``CLOUDQ_STEPFUNCTIONS=full``.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from bench.counting_proxy import CountingProxy
from cloudq.infra import app_resources
from cloudq.infra.iam import STEPFUNCTIONS_ACTIONS, iam_documents
from cloudq_emulator.provision import delete_stack, provision
from cloudq_emulator.server import MinistackServer
from tests.e2e.test_deploy_e2e import iam_action
from tests.processes import process_env, wait_until, worker_log, worker_processes
from tests.tasks import make_app

WAIT_FOR_TOKEN = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
HEARTBEAT = "AWSStepFunctions.SendTaskHeartbeat"
#: The worker's queue; the Lambda function consumes ``default``.
WORKER_QUEUE = "sfn"
WORKER_TASK_SECONDS = 6
LAMBDA_TASK_SECONDS = 6 if os.environ.get("CLOUDQ_STEPFUNCTIONS") == "full" else 3
GONE_TOKEN_LINE = "SendTaskSuccess not taken, the token is gone (TaskDoesNotExist)"


def task_state(queue_url: str, body: dict[str, Any], heartbeat: int | None = None) -> dict[str, Any]:
    """A ``.waitForTaskToken`` state sending ``body`` (docs/guides/step-functions.md) to the queue."""
    body = {**body, "task_token.$": "$$.Task.Token"}
    state: dict[str, Any] = {"Type": "Task", "Resource": WAIT_FOR_TOKEN, "TimeoutSeconds": 60}
    if heartbeat is not None:
        state["HeartbeatSeconds"] = heartbeat
        body["heartbeat_seconds"] = heartbeat
    state["Parameters"] = {"QueueUrl": queue_url, "MessageBody": body}
    return state


def two_steps(urls: dict[str, str]) -> dict[str, Any]:
    """A 6 s task on the worker, a Choice on its result, a task on Lambda: HeartbeatSeconds=2."""
    first = {"task": "slow_add", "args.$": "$.numbers", "kwargs": {"seconds": WORKER_TASK_SECONDS}}
    second = {"task": "slow_add", "args.$": "States.Array($, 10)", "kwargs": {"seconds": LAMBDA_TASK_SECONDS}}
    return {
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


@dataclass
class Run:
    app: Any
    succeeded: dict[str, Any]
    failed: dict[str, Any]
    #: The result of the task whose token was gone, and whether the worker logged it.
    gone_token_result: Any
    gone_token_logged: bool
    #: When each heartbeat arrived (time.monotonic()), per caller.
    beats: dict[str, list[float]]
    #: X-Amz-Target → count, of the worker and the function together
    calls: Counter[str]


@pytest.fixture(scope="module")
def run(ministack_server: MinistackServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """Deploy the test app (its Lambda function on ``default``, through a counting proxy),
    start a worker on ``sfn`` (through another), then play the scenario once."""
    monkeypatch = pytest.MonkeyPatch()
    tmp_path = tmp_path_factory.mktemp("stepfunctions")
    proxies = {name: CountingProxy(ministack_server.endpoint_url).start() for name in ("worker", "lambda")}
    stack = None
    try:
        env = process_env(ministack_server, tmp_path, monkeypatch, "sfn")
        settings = {
            "CLOUDQ_STEPFUNCTIONS_QUEUES": f"default,{WORKER_QUEUE}",
            "CLOUDQ_LAMBDA_QUEUES": "default",
            "CLOUDQ_LAMBDA_TIMEOUT": str(LAMBDA_TASK_SECONDS + 6),
        }
        for key, value in settings.items():
            monkeypatch.setenv(key, value)
        app = make_app(env["CLOUDQ_TEST_APP"])
        resources = app_resources(app, "tests.tasks:app")
        stack = resources.stack_name
        provision(
            resources,
            endpoint_url=ministack_server.endpoint_url,
            function_endpoint_url=proxies["lambda"].endpoint_url,
        )
        app.tasks["noop"].delay()  # the function's cold start, out of the way of the second state
        sqs = boto3.client("sqs")
        urls = {
            q: sqs.get_queue_url(QueueName=app.physical_queue_name(q))["QueueUrl"] for q in ("default", "sfn")
        }
        with worker_processes({**env, **settings}, tmp_path) as start:
            start("-Q", WORKER_QUEUE, env={"AWS_ENDPOINT_URL": proxies["worker"].endpoint_url})
            succeeded = run_machine(two_steps(urls), {"numbers": [2, 3]})
            failing = {"task": "always_fails", "kwargs": {"tag": "sfn"}}
            failed = run_machine(
                {"StartAt": "F", "States": {"F": {**task_state(urls["sfn"], failing), "End": True}}}, {}
            )
            gone = {"task": "add", "args": [2, 3], "task_token": "a-token-long-gone"}
            sent = sqs.send_message(QueueUrl=urls[WORKER_QUEUE], MessageBody=json.dumps(gone))
            gone_result = app.AsyncResult(sent["MessageId"]).get(timeout=30)
            logged = wait_until(lambda: GONE_TOKEN_LINE in worker_log(tmp_path), timeout=10)
        calls: Counter[str] = Counter()
        for proxy in proxies.values():
            calls.update(proxy.reset())
        beats = {name: proxy.times(HEARTBEAT) for name, proxy in proxies.items()}
        yield Run(app, succeeded, failed, gone_result, logged, beats, calls)
    finally:
        if stack is not None:
            delete_stack(boto3.client("cloudformation"), stack)
        for proxy in proxies.values():
            proxy.stop()
        monkeypatch.undo()


def test_two_states_run_on_a_worker_then_on_lambda_and_end_with_the_second_result(run: Run) -> None:
    assert run.succeeded["status"] == "SUCCEEDED", run.succeeded
    assert json.loads(run.succeeded["output"]) == 15  # add(2, 3), then 5 was chosen: add(5, 10)


def test_a_task_that_fails_finally_fails_the_execution_with_its_error_and_cause(run: Run) -> None:
    assert run.failed["status"] == "FAILED", run.failed
    assert run.failed["error"] == "FlakyError"
    assert run.failed["cause"] == "failing on purpose sfn (gave up after 3 attempts)"
    # reported once, at the end: not for either of its 2 retries
    assert run.calls["AWSStepFunctions.SendTaskFailure"] == 1


@pytest.mark.parametrize(
    ("caller", "seconds"), [("worker", WORKER_TASK_SECONDS), ("lambda", LAMBDA_TASK_SECONDS)]
)
def test_a_running_task_beats_at_least_once_every_two_seconds(run: Run, caller: str, seconds: float) -> None:
    beats = run.beats[caller]
    gaps = [later - earlier for earlier, later in zip(beats, beats[1:], strict=False)]
    assert len(beats) >= seconds // 2, beats
    assert max(gaps, default=0.0) <= 2.0, gaps


def test_a_token_step_functions_no_longer_knows_is_logged_and_the_task_succeeds(run: Run) -> None:
    assert run.gone_token_result == 5
    assert run.gone_token_logged


def test_the_rendered_iam_allows_every_call_and_each_step_functions_action_is_used(run: Run) -> None:
    policy = iam_documents(app_resources(run.app, "tests.tasks:app"))["WorkerRole"]["PolicyDocument"]
    allowed = {action for statement in policy["Statement"] for action in statement["Action"]}
    made = {iam_action(target) for target in run.calls}
    assert made <= allowed, sorted(made - allowed)
    assert {action for action in made if action.startswith("states:")} == set(STEPFUNCTIONS_ACTIONS)
    assert run.calls["AWSStepFunctions.SendTaskSuccess"] == 3  # two states, and the gone token's
