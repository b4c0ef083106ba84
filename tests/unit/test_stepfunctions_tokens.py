"""Step Functions' task tokens (issue 27): the body a ``.waitForTaskToken`` state sends runs
on a queue of ``stepfunctions_queues``, and the executor reports its end to Step Functions
X.
The heartbeats and the whole round trip run on ministack: ``tests/e2e/test_stepfunctions_e2e.py``."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from cloudq import CloudQ, State
from cloudq.core.errors import DecodeError, SignatureError
from cloudq.infra import app_resources
from cloudq.infra.iam import STEPFUNCTIONS_ACTIONS, iam_documents
from cloudq.runtime.executor import Executor
from cloudq.runtime.outcome import Action, apply_outcome
from cloudq.runtime.task_tokens import MAX_OUTPUT_BYTES, RESULT_TOO_LARGE_ERROR, TaskTokens
from cloudq.transports.base import OutgoingMessage
from tests.tasks import make_app

QUEUE = "default"
TOKEN = "token-of-the-state"


def sfn_app(**settings: Any) -> CloudQ:
    """Signing on, Step Functions on the default queue."""
    options: dict[str, Any] = {"signing_keys": ("k1",), "stepfunctions_queues": (QUEUE,), **settings}
    return make_app("unit", broker="memory://", backend="memory://", **options)


def sfn_body(task: str, *args: Any, **kwargs: Any) -> str:
    """What Step Functions writes as the SQS body: the state's MessageBody as JSON."""
    return json.dumps({"task": task, "args": list(args), "kwargs": kwargs, "task_token": TOKEN})


class Reported:
    """An executor whose Step Functions client is moto's, with the calls it made."""

    def __init__(self, app: CloudQ) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        client = boto3.client("stepfunctions", region_name="us-east-1")
        client.meta.events.register("before-parameter-build.sfn.*", self._record)
        self.executor = Executor(app)
        self.executor.tokens = TaskTokens(client)
        self.app = app

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.calls.append((model.name, params))

    def run_queue(self, rounds: int = 10) -> None:
        """Receive, execute and apply until the queue is empty."""
        for _ in range(rounds):
            received = self.app.transport.receive(QUEUE, 10, wait_seconds=0)
            if not received:
                return
            for message in received:
                prepared = self.executor.prepare(message)
                apply_outcome(self.app.transport, prepared, self.executor.execute(prepared))


def send(app: CloudQ, body: str, queue: str = QUEUE) -> str:
    [sent] = app.transport.send(queue, [OutgoingMessage(body)])
    assert sent.message_id is not None
    return sent.message_id


def test_an_unsigned_step_functions_body_runs_on_its_queue_and_reports_the_result(moto_aws: object) -> None:
    # Given an app that signs, serving Step Functions on its default queue
    app = sfn_app()
    reported = Reported(app)
    # When a state's body arrives there, unsigned, and runs
    message_id = send(app, sfn_body("add", 2, 3))
    reported.run_queue()
    # Then the task ran under the SQS message id, and its result is the state's output
    assert app.AsyncResult(message_id).get(timeout=1) == 5
    assert reported.calls == [("SendTaskSuccess", {"taskToken": TOKEN, "output": "5"})]


def test_only_the_final_failure_is_reported_with_its_type_and_message(moto_aws: object) -> None:
    # Given a task that fails on each of its 3 attempts (2 retries, no delay)
    app = sfn_app()
    reported = Reported(app)
    message_id = send(app, sfn_body("always_fails", tag="x"))
    # When every attempt has run
    reported.run_queue()
    # Then Step Functions heard once, of the final failure
    assert app.AsyncResult(message_id).state is State.FAILURE
    cause = "failing on purpose x (gave up after 3 attempts)"
    assert reported.calls == [
        ("SendTaskFailure", {"taskToken": TOKEN, "error": "FlakyError", "cause": cause})
    ]


def test_an_unknown_task_fails_its_state_at_once(moto_aws: object) -> None:
    app = sfn_app()
    reported = Reported(app)
    send(app, sfn_body("no_such_task"))
    reported.run_queue()
    [(operation, params)] = reported.calls
    assert (operation, params["error"]) == ("SendTaskFailure", "UnknownTaskError")
    assert "no_such_task" in params["cause"]


def test_a_body_that_cannot_be_read_fails_its_state_at_once(moto_aws: object) -> None:
    # Given a state whose args.$ gave an object, not a list
    app = sfn_app()
    reported = Reported(app)
    send(app, json.dumps({"task": "add", "args": {"a": 1}, "task_token": TOKEN}))
    # When it arrives, Then it is dead-lettered and its state fails saying why
    reported.run_queue()
    [(operation, params)] = reported.calls
    assert (operation, params["taskToken"], params["error"]) == ("SendTaskFailure", TOKEN, "DecodeError")
    assert "args" in params["cause"]
    assert app.transport.stats("default-dlq").visible == 1


def test_a_result_over_the_output_limit_fails_the_state_and_the_task_keeps_its_success(
    moto_aws: object,
) -> None:
    # Given a task whose result is over Step Functions' 256 KiB
    app = sfn_app()
    reported = Reported(app)
    big = "x" * (MAX_OUTPUT_BYTES + 1)
    message_id = send(app, sfn_body("echo", big))
    # When it runs
    reported.run_queue()
    # Then the state fails saying why, and the task itself succeeded with its whole result
    [(operation, params)] = reported.calls
    assert (operation, params["error"]) == ("SendTaskFailure", RESULT_TOO_LARGE_ERROR)
    assert f"{MAX_OUTPUT_BYTES + 3} bytes" in params["cause"]
    assert app.AsyncResult(message_id).get(timeout=1) == big


def test_a_body_with_a_token_is_refused_on_a_queue_not_named_for_step_functions(moto_aws: object) -> None:
    # Given an app serving Step Functions on no queue
    app = sfn_app(stepfunctions_queues=())
    reported = Reported(app)
    # When a token body arrives on its default queue
    send(app, sfn_body("add", 2, 3))
    received = app.transport.receive(QUEUE, 10, wait_seconds=0)
    outcome = reported.executor.execute(received[0])
    # Then it is dead-lettered, saying which setting to change, and nothing ran or reported
    assert outcome.action is Action.DEAD_LETTER
    assert "stepfunctions_queues" in outcome.reason
    assert reported.calls == []


def test_other_bodies_on_a_step_functions_queue_must_still_be_signed() -> None:
    app = sfn_app()
    unsigned = json.dumps({"id": "t1", "task": "add", "args": [1, 2]})
    with pytest.raises(SignatureError):
        app.codec.decode(unsigned, "m1", QUEUE)
    # and a token body that is signed is verified as any other
    signed_badly = json.dumps({"id": "t2", "task": "add", "task_token": TOKEN, "signature": "00"})
    with pytest.raises(SignatureError):
        app.codec.decode(signed_badly, "m2", QUEUE)


def test_a_token_body_keeps_its_token_and_cadence_when_decoded() -> None:
    app = sfn_app()
    body = json.dumps({"task": "add", "args": [1, 2], "task_token": TOKEN, "heartbeat_seconds": 60})
    message = app.codec.decode(body, "sqs-message-id", QUEUE)
    assert (message.id, message.task_token, message.heartbeat_seconds) == ("sqs-message-id", TOKEN, 60)
    with pytest.raises(DecodeError, match="CLOUDQ_STEPFUNCTIONS_QUEUES"):
        app.codec.decode(body, "sqs-message-id", "other")


def test_the_rendered_role_may_report_back_only_when_the_app_serves_step_functions() -> None:
    def worker_actions(app: CloudQ) -> set[str]:
        policy = iam_documents(app_resources(app))["WorkerRole"]["PolicyDocument"]
        return {action for statement in policy["Statement"] for action in statement["Action"]}

    plain = make_app("unit", broker="sqs://", backend="memory://")
    serving = make_app("unit", broker="sqs://", backend="memory://", stepfunctions_queues=("sfn",))
    assert not worker_actions(plain) & set(STEPFUNCTIONS_ACTIONS)
    assert worker_actions(serving) >= set(STEPFUNCTIONS_ACTIONS)
    # and the queue Step Functions sends to is in the stack
    assert "unit-sfn" in {queue.name for queue in app_resources(serving).queues}
