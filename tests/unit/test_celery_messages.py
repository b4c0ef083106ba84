"""Celery's messages on a Celery queue (issue 25): a real Celery 5 producer (kombu's SQS
transport) writes to moto's SQS; cloudq's executor, worker drain and Lambda handler run them."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from celery import Celery

from cloudq import CloudQ, State
from cloudq.core.clock import ManualClock
from cloudq.ops.dead_letters import list_dead_letters
from cloudq.runtime.executor import Executor
from cloudq.runtime.outcome import Action
from cloudq.testing import FakeLambdaContext, drain, sqs_event
from tests.tasks import make_app

QUEUE = "celery"


@pytest.fixture
def queue_urls(moto_aws: object) -> dict[str, str]:
    """Celery's queue and its dead-letter queue, named as Celery names them."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    return {name: sqs.create_queue(QueueName=name)["QueueUrl"] for name in (QUEUE, f"{QUEUE}-dlq")}


@pytest.fixture
def producer(queue_urls: dict[str, str]) -> Iterator[Celery]:
    """A Celery producer as a team has it on SQS (its queue predefined, JSON)."""
    options = {"region": "us-east-1", "predefined_queues": {QUEUE: {"url": queue_urls[QUEUE]}}}
    celery = Celery("proj", broker="sqs://", broker_transport_options=options)
    celery.conf.update(task_default_queue=QUEUE, task_serializer="json")
    yield celery
    celery.close()


def cloudq_app(**settings: Any) -> CloudQ:
    return make_app("unit", broker="sqs://", backend="memory://", celery_queues=(QUEUE,), **settings)


def only_message(app: CloudQ) -> Any:
    [received] = app.transport.receive(QUEUE, 10, wait_seconds=0)
    return received


def test_a_celery_delay_runs_under_its_celery_id(producer: Celery) -> None:
    # Given a Celery producer and a cloudq app serving the Celery queue by its name
    app = cloudq_app()
    # When the producer sends, and cloudq drains the queue
    sent = producer.send_task("proj.tasks.add", args=(2, 3))
    drain(app, [QUEUE])
    # Then the task ran under Celery's id, its arguments as sent
    result = app.AsyncResult(sent.id)
    assert result.state is State.SUCCESS and result.get(timeout=1) == 5


def test_celery_root_and_parent_ids_reach_the_request(producer: Celery) -> None:
    # Given a Celery message with a root and a parent id
    sent = producer.send_task("proj.tasks.lineage", root_id="root-1", parent_id="parent-1")
    app = cloudq_app()
    # When it runs
    drain(app, [QUEUE])
    # Then the task sees them, and Celery's id as its own
    assert app.AsyncResult(sent.id).get(timeout=1) == [sent.id, "root-1", "parent-1", 1]


def test_celery_arguments_are_checked_as_delay_checks_them(producer: Celery) -> None:
    # Given a Celery message whose arguments do not fit the task's signature
    sent = producer.send_task("proj.tasks.add", args=("two",), kwargs={"z": 1})
    app = cloudq_app()
    # When it runs
    drain(app, [QUEUE], raise_failures=False)
    # Then it fails without running, and is in the Celery queue's dead-letter queue
    assert app.AsyncResult(sent.id).state is State.FAILURE
    [letter] = list_dead_letters(app, QUEUE)
    assert "ArgumentError" in letter.reason and letter.task_id == sent.id


def test_a_celery_countdown_hops_in_celerys_format_until_its_eta(producer: Celery) -> None:
    # Given a Celery message due in 120 s
    before = time.time()
    sent = producer.send_task("proj.tasks.add", args=(1, 1), countdown=120)
    app = cloudq_app(clock=ManualClock(before))
    # When a worker receives it now
    outcome = Executor(app).execute(only_message(app))
    # Then it is re-sent, delayed, still a Celery message with its id and eta
    assert outcome.action is Action.RESEND and 119 <= outcome.delay_seconds <= 121
    assert outcome.body is not None
    hopped = app.codec.decode(outcome.body, None, QUEUE)
    assert hopped.id == sent.id and hopped.eta is not None and hopped.eta >= before + 119
    assert json.loads(outcome.body)["headers"]["task"] == "proj.tasks.add"


def test_an_expired_celery_message_is_not_run(producer: Celery) -> None:
    # Given a Celery message that expires in 60 s, received after that
    sent = producer.send_task("proj.tasks.add", args=(1, 1), expires=60)
    app = cloudq_app(clock=ManualClock(time.time() + 61))
    # When it is run
    drain(app, [QUEUE], raise_failures=False)
    # Then it failed as expired
    record = app.AsyncResult(sent.id)
    stored = record.record()
    assert stored is not None and stored.state is State.FAILURE and stored.error_type == "Expired"


def test_celery_retries_count_towards_max_retries(producer: Celery) -> None:
    # Given a Celery message that Celery already retried twice, of a task allowed 2 retries
    sent = producer.send_task("proj.tasks.flaky", args=("a",), retries=2)
    app = cloudq_app()
    # When it fails once more
    drain(app, [QUEUE], raise_failures=False)
    # Then it is not retried: its third attempt was the last
    [letter] = list_dead_letters(app, QUEUE)
    assert letter.task_id == sent.id and "gave up after 3 attempts" in letter.reason


def test_the_lambda_handler_runs_a_celery_message(producer: Celery) -> None:
    # Given a Celery message, as the event source mapping hands it over (kombu's base64 body)
    sent = producer.send_task("proj.tasks.add", args=(20, 22))
    app = cloudq_app()
    event = sqs_event(app, QUEUE)
    assert not event["Records"][0]["body"].startswith("{")
    # When the handler runs the event
    response = app.lambda_handler(event, FakeLambdaContext())
    # Then the task ran under Celery's id
    assert response == {"batchItemFailures": []}
    assert app.AsyncResult(sent.id).get(timeout=1) == 42


def test_a_signing_app_runs_celerys_unsigned_messages_on_a_celery_queue_only(producer: Celery) -> None:
    # Given an app with signing keys, serving the Celery queue
    app = cloudq_app(signing_keys=("k1",))
    sent = producer.send_task("proj.tasks.add", args=(1, 2))
    # When the unsigned Celery message runs
    drain(app, [QUEUE])
    # Then it ran (a Celery queue is not signed: docs/guides/celery.md)
    assert app.AsyncResult(sent.id).get(timeout=1) == 3


def test_a_celery_message_on_a_cloudq_queue_says_how_to_serve_it(queue_urls: dict[str, str]) -> None:
    # Given an app that does not list "celery" in celery_queues (its queue is then "unit-celery")
    app = make_app("unit", broker="sqs://", backend="memory://")
    sqs = boto3.client("sqs", region_name="us-east-1")
    for name in ("unit-celery", "unit-celery-dlq"):
        sqs.create_queue(QueueName=name)
    body = CeleryBodies.good()
    app.transport.send("celery", [_outgoing(body)])
    # When it is run
    drain(app, ["celery"], raise_failures=False)
    # Then it is refused with the setting to change
    [letter] = list_dead_letters(app, "celery")
    assert "celery_queues" in letter.reason


class CeleryBodies:
    """Kombu message JSON as the codec reads it (for garbage built from a good one)."""

    @staticmethod
    def good(**headers: Any) -> str:
        import base64

        body = base64.b64encode(json.dumps([[1, 2], {}, {"callbacks": None}]).encode()).decode()
        envelope = {
            "body": body,
            "content-type": "application/json",
            "content-encoding": "utf-8",
            "headers": {"task": "proj.tasks.add", "id": "t-1", "retries": 0, **headers},
            "properties": {"body_encoding": "base64", "delivery_tag": "d"},
        }
        return json.dumps(envelope)


def _outgoing(body: str) -> Any:
    from cloudq.transports.base import OutgoingMessage

    return OutgoingMessage(body)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("%%%not base64%%%", "not JSON"),
        (json.dumps({"body": "x", "content-type": "application/x-python-serialize", "headers": {}}), "json"),
        (json.dumps({"body": "x", "content-type": "application/json"}), "headers"),
        (json.dumps({"body": "[1]", "content-type": "application/json", "headers": {"x": 1}}), "protocol 1"),
        (CeleryBodies.good().replace('"body": "', '"body": "%'), "base64"),
        (CeleryBodies.good(eta="tomorrow"), "ISO 8601"),
    ],
)
def test_celery_shaped_garbage_is_dead_lettered_with_its_reason(
    queue_urls: dict[str, str], raw: str, expected: str
) -> None:
    # Given a body on the Celery queue that cloudq cannot run as it was meant
    sqs = boto3.client("sqs", region_name="us-east-1")
    sqs.send_message(QueueUrl=queue_urls[QUEUE], MessageBody=raw)
    app = cloudq_app()
    # When it is run
    drain(app, [QUEUE], raise_failures=False)
    # Then it is in the dead-letter queue, with a reason that says what is wrong
    [letter] = list_dead_letters(app, QUEUE)
    assert expected.lower() in letter.reason.lower()


def test_a_celery_message_not_in_json_is_refused_with_the_setting_to_change(
    queue_urls: dict[str, str],
) -> None:
    # Given a Celery producer set to another serializer than JSON (YAML here; any is refused
    # unread, whatever it is)
    options = {"region": "us-east-1", "predefined_queues": {QUEUE: {"url": queue_urls[QUEUE]}}}
    celery = Celery("proj", broker="sqs://", broker_transport_options=options)
    celery.conf.update(task_default_queue=QUEUE, task_serializer="yaml", accept_content=["yaml"])
    celery.send_task("proj.tasks.add", args=(1, 2), eta=dt.datetime.now(dt.timezone.utc))
    app = cloudq_app()
    # When it is run
    drain(app, [QUEUE], raise_failures=False)
    # Then it is refused, unread, with what to set on the Celery side
    [letter] = list_dead_letters(app, QUEUE)
    assert "task_serializer='json'" in letter.reason


def test_a_celery_queue_and_its_dead_letter_queue_are_provisioned_under_celerys_names() -> None:
    # Given an app serving Celery's queue "celery"
    from cloudq.infra import app_resources

    app = cloudq_app()
    # When its resources are modelled (what emulator up and infra render deploy)
    queues = {(queue.name, queue.dead_letter_name) for queue in app_resources(app).queues}
    # Then the Celery queue keeps its name, and so does its dead-letter queue
    assert ("celery", "celery-dlq") in queues and ("unit-default", "unit-default-dlq") in queues


def test_cloudq_sends_to_a_celery_queue_in_celerys_format(queue_urls: dict[str, str]) -> None:
    # Given a cloudq app serving the Celery queue
    app = cloudq_app()
    # When it sends a task there, with a countdown
    sent = app.send_task("proj.tasks.add", args=(4, 5), queue=QUEUE, countdown=30)
    # Then SQS holds kombu's base64 body, undelayed, with Celery's headers and the eta in it
    sqs = boto3.client("sqs", region_name="us-east-1")
    [raw] = sqs.receive_message(QueueUrl=queue_urls[QUEUE])["Messages"]
    import base64

    envelope = json.loads(base64.b64decode(raw["Body"]))
    assert envelope["headers"]["id"] == sent.id and envelope["headers"]["eta"] is not None
    args = json.loads(base64.b64decode(envelope["body"]))
    assert args[:2] == [[4, 5], {}]
