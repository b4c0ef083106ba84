"""Celery's results (issue 25): a run of a Celery message also leaves Celery's meta in the
Celery result backend the app names (``celery_result_backend``), read back here by a real
Celery's own DynamoDB backend (moto); Redis is read by Celery in tests/e2e/test_celery_e2e.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from celery import Celery

from cloudq import CloudQ, State
from cloudq.core import celery_protocol
from cloudq.runtime.executor import Executor
from cloudq.runtime.outcome import Action
from cloudq.testing import drain
from tests.tasks import make_app

QUEUE = "celery"


@pytest.fixture
def producer(moto_aws: object) -> Iterator[Celery]:
    """A Celery producer on SQS whose results are in DynamoDB (Celery's table ``celery``)."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    urls = {name: sqs.create_queue(QueueName=name)["QueueUrl"] for name in (QUEUE, f"{QUEUE}-dlq")}
    options = {"region": "us-east-1", "predefined_queues": {QUEUE: {"url": urls[QUEUE]}}}
    celery = Celery(
        "proj", broker="sqs://", backend="dynamodb://@us-east-1/celery", broker_transport_options=options
    )
    celery.conf.update(task_default_queue=QUEUE, task_serializer="json")
    celery.backend.client  # noqa: B018 - Celery creates its table on first use
    yield celery
    celery.close()


def cloudq_app(**settings: Any) -> CloudQ:
    celery = {"celery_queues": (QUEUE,), "celery_result_backend": "dynamodb://celery?region=us-east-1"}
    return make_app("unit", broker="sqs://", **{"backend": None, **celery, **settings})


def test_celerys_dynamodb_backend_reads_what_cloudq_ran(producer: Celery) -> None:
    # Given a Celery producer with results in DynamoDB, and a cloudq app naming that table
    app = cloudq_app()
    sent = producer.send_task("proj.tasks.add", args=(20, 22))
    failed = producer.send_task("proj.tasks.fails", args=("no stock",))
    # When cloudq runs both (with no result backend of its own)
    drain(app, [QUEUE], raise_failures=False)
    # Then Celery's own AsyncResult reads the value, and raises the failure as Celery does
    assert sent.get(timeout=5) == 42
    with pytest.raises(ValueError, match="no stock"):
        failed.get(timeout=5)
    assert failed.traceback and "ValueError" in failed.traceback


def test_a_cloudq_message_leaves_no_celery_result(producer: Celery) -> None:
    # Given a cloudq app naming a Celery result backend
    app = cloudq_app(backend="memory://")
    boto3.client("sqs", region_name="us-east-1").create_queue(QueueName="unit-default")
    # When one of its own (cloudq) messages runs
    sent = app.send_task("add", args=(1, 2))
    drain(app, ["default"])
    # Then only cloudq's record has it: Celery's table is for Celery's messages
    assert app.AsyncResult(sent.id).get(timeout=1) == 3
    assert producer.AsyncResult(sent.id).state == "PENDING"


def test_a_celery_result_backend_that_is_down_keeps_the_message(producer: Celery) -> None:
    # Given a Celery result backend that does not answer (nothing listens on port 1)
    app = cloudq_app(celery_result_backend="redis://127.0.0.1:1/0")
    producer.send_task("proj.tasks.add", args=(1, 1))
    [received] = app.transport.receive(QUEUE, 1, wait_seconds=0)
    # When the task runs
    outcome = Executor(app).execute(received)
    # Then the message is kept, to be run again when its result can be written
    assert outcome.action is Action.RETRY and "Celery result" in outcome.reason


def test_the_meta_is_celerys_json() -> None:
    # Given a failure of an error type Celery knows, and one it does not
    known = json.loads(
        celery_protocol.result_meta("t1", "FAILURE", error=("KeyError", "k", "tb"), date_done=0.0)
    )
    custom = json.loads(
        celery_protocol.result_meta("t2", "FAILURE", error=("ShopError", "x", ""), date_done=None)
    )
    # Then each is Celery's exception form: a builtin by its module, any other by its name only
    assert known == {
        "status": "FAILURE",
        "result": {"exc_type": "KeyError", "exc_message": ["k"], "exc_module": "builtins"},
        "traceback": "tb",
        "children": [],
        "date_done": "1970-01-01T00:00:00+00:00",
        "task_id": "t1",
    }
    assert custom["result"]["exc_module"] is None and custom["traceback"] is None


def test_a_task_that_ignores_its_result_still_answers_celerys_get(producer: Celery) -> None:
    # Given a task that keeps no result of cloudq's own (ignore_result)
    app = cloudq_app(backend="memory://")

    @app.task(name="proj.tasks.quiet", ignore_result=True)
    def quiet() -> str:
        return "done"

    sent = producer.send_task("proj.tasks.quiet")
    # When it runs
    drain(app, [QUEUE])
    # Then Celery's .get() has it, and cloudq's backend keeps no SUCCESS (only its claim)
    assert sent.get(timeout=5) == "done"
    assert app.AsyncResult(sent.id).state is not State.SUCCESS
