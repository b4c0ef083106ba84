"""The Lambda handler: SQS event in, partial batch response out, through the same executor."""

from __future__ import annotations

import copy
import hashlib
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest

from cloudq import CloudQ, State
from cloudq.transports.base import DeadLetterNote
from tests.tasks import make_app

# Copied field for field from the AWS Lambda documentation ("Using Lambda with Amazon SQS",
# example Amazon SQS message event, standard queue).
AWS_DOC_EVENT: dict[str, Any] = {
    "Records": [
        {
            "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
            "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a...",
            "body": "Test message.",
            "attributes": {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": "1545082649183",
                "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                "ApproximateFirstReceiveTimestamp": "1545082649185",
            },
            "messageAttributes": {
                "myAttribute": {
                    "stringValue": "myValue",
                    "stringListValues": [],
                    "binaryListValues": [],
                    "dataType": "String",
                }
            },
            "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:my-queue",
            "awsRegion": "us-east-2",
        },
        {
            "messageId": "2e1424d4-f796-459a-8184-9c92662be6da",
            "receiptHandle": "AQEBzWwaftRI0KuVm4tP+/7q1rGgNqicHq...",
            "body": "Test message.",
            "attributes": {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": "1545082650636",
                "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                "ApproximateFirstReceiveTimestamp": "1545082650649",
            },
            "messageAttributes": {},
            "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:my-queue",
            "awsRegion": "us-east-2",
        },
    ]
}


@dataclass
class FakeContext:
    """The attributes of Lambda's context object that cloudq reads."""

    remaining_ms: int = 60_000
    function_name: str = "shop-worker"
    aws_request_id: str = "req-1"
    memory_limit_in_mb: int = 256

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def _event(app: CloudQ, queue: str = "default", count: int = 10) -> dict[str, Any]:
    """Receive from the in-process broker and wrap the messages as SQS event records."""
    records = []
    for message in app.transport.receive(queue, count, wait_seconds=0):
        record = copy.deepcopy(AWS_DOC_EVENT["Records"][0])
        record.update(
            messageId=message.message_id,
            receiptHandle=message.receipt_handle,
            body=message.body,
            md5OfBody=hashlib.md5(message.body.encode()).hexdigest(),
            eventSourceARN=f"arn:aws:sqs:us-east-1:000000000000:{app.physical_queue_name(queue)}",
        )
        record["attributes"]["ApproximateReceiveCount"] = str(message.receive_count)
        if message.group_id:
            record["attributes"]["MessageGroupId"] = message.group_id
        records.append(record)
    return {"Records": records}


def test_the_aws_documentation_example_event_is_handled_without_raising() -> None:
    # Given an app whose queue is the doc's "my-queue", and the doc's event (bodies that are
    # not cloudq messages)
    app = CloudQ("my", broker="memory://", backend="memory://", default_queue="queue")
    # When the handler gets it
    response = app.lambda_handler(copy.deepcopy(AWS_DOC_EVENT), FakeContext())
    # Then nothing is reported for redelivery (poison is dead-lettered with a reason)
    assert response == {"batchItemFailures": []}
    dead = app.transport.receive("queue-dlq", 10, wait_seconds=0)
    assert len(dead) == 2
    notes = [DeadLetterNote.from_attributes(message.attributes) for message in dead]
    assert all(note is not None and note.reason.startswith("DecodeError") for note in notes)
    assert dead[0].attributes["myAttribute"] == "myValue"


def test_successes_are_not_listed_and_results_are_stored(app: CloudQ) -> None:
    results = [app.tasks["add"].delay(i, 1) for i in range(5)]
    assert app.lambda_handler(_event(app), FakeContext()) == {"batchItemFailures": []}
    assert [result.get(timeout=1) for result in results] == [1, 2, 3, 4, 5]


def test_one_failing_record_is_the_only_one_reported_and_is_delayed_by_its_backoff(
    app: CloudQ,
) -> None:
    ok = app.tasks["add"].delay(1, 1)
    bad = app.tasks["retry_once"].delay(60)
    event = _event(app)
    bad_id = next(r["messageId"] for r in event["Records"] if bad.id in r["body"])
    response = app.lambda_handler(event, FakeContext())
    assert response == {"batchItemFailures": [{"itemIdentifier": bad_id}]}
    assert ok.get(timeout=1) == 2
    assert bad.state is State.RETRY
    stats = app.transport.stats("default")
    assert stats.in_flight == 2  # the ack is the mapping's job; the retry is hidden for 60 s


def test_a_poison_record_is_dead_lettered_and_the_rest_of_its_batch_succeeds(app: CloudQ) -> None:
    from cloudq.transports import OutgoingMessage

    first = app.tasks["add"].delay(1, 2)
    app.transport.send("default", [OutgoingMessage("{not json")])
    last = app.tasks["add"].delay(3, 4)
    assert app.lambda_handler(_event(app), FakeContext()) == {"batchItemFailures": []}
    assert (first.get(timeout=1), last.get(timeout=1)) == (3, 7)
    assert app.transport.stats("default-dlq").visible == 1


def test_fifo_records_after_a_failure_in_their_group_are_reported_without_running() -> None:
    app = make_app("fifo", broker="memory://", backend="memory://", default_queue="orders.fifo")
    first = app.tasks["retry_once"].delay(30)
    second = app.tasks["add"].delay(1, 1)
    event = _event(app, "orders.fifo")
    assert len(event["Records"]) == 2
    response = app.lambda_handler(event, FakeContext())
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [
        r["messageId"] for r in event["Records"]
    ]
    assert second.state is State.PENDING  # not run: order within the group holds
    assert first.state is State.RETRY
    # And the record not run is handed back at once; the group waits for the retried one
    stats = app.transport.stats("orders.fifo")
    assert (stats.visible, stats.in_flight, stats.delayed) == (1, 1, 0)
    assert app.transport.receive("orders.fifo", wait_seconds=0) == []


def test_records_that_cannot_finish_before_the_deadline_are_handed_back_unstarted(
    app: CloudQ,
) -> None:
    # Given a batch and only 500 ms left in the invocation
    result = app.tasks["add"].delay(1, 1)
    event = _event(app)
    response = app.lambda_handler(event, FakeContext(remaining_ms=500))
    # Then the record is reported, not run, and visible again at once
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert result.state is State.PENDING
    assert app.transport.stats("default").visible == 1


def test_the_ready_handler_needs_cloudq_app(monkeypatch: pytest.MonkeyPatch) -> None:
    from cloudq import ConfigurationError, aws_lambda

    monkeypatch.delenv("CLOUDQ_APP", raising=False)
    monkeypatch.setattr(aws_lambda, "_app", None)
    with pytest.raises(ConfigurationError, match="CLOUDQ_APP"):
        aws_lambda.handler({"Records": []}, FakeContext())


def test_importing_the_handler_loads_no_cli_or_emulator_code() -> None:
    code = (
        "import sys, cloudq.aws_lambda; "
        "bad = [m for m in ('click', 'rich', 'redis', 'amqp', 'moto', 'ministack') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_the_testing_helpers_build_an_event_the_handler_runs() -> None:
    from cloudq.testing import FakeLambdaContext, sqs_event

    app = make_app("helpers", broker="memory://", backend="memory://")
    results = [app.tasks["add"].delay(i, i) for i in range(12)]
    event = sqs_event(app)
    assert len(event["Records"]) == 10
    assert event["Records"][0]["eventSourceARN"] == "arn:aws:sqs:us-east-1:000000000000:helpers-default"
    assert app.lambda_handler(event, FakeLambdaContext()) == {"batchItemFailures": []}
    assert app.lambda_handler(sqs_event(app), FakeLambdaContext()) == {"batchItemFailures": []}
    assert [result.get(timeout=1) for result in results] == [2 * i for i in range(12)]
    # A context whose deadline has passed starts nothing
    app.tasks["add"].delay(1, 1)
    expired = FakeLambdaContext(timeout_seconds=0)
    [record] = sqs_event(app)["Records"]
    assert app.lambda_handler({"Records": [record]}, expired) == {
        "batchItemFailures": [{"itemIdentifier": record["messageId"]}]
    }
