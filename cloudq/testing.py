"""Helpers for testing tasks without a worker process (dramatiq's ``join``, for cloudq).

``drain(app)`` runs every message of the app's queues through the real executor, in this
thread, until the queues are empty, and raises the first final task failure.

``sqs_event(app)`` receives up to 10 messages and wraps them as the SQS event an event source
mapping would pass to ``app.lambda_handler``; ``FakeLambdaContext`` is the context object.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cloudq.core.errors import TaskError
from cloudq.core.naming import is_celery_queue
from cloudq.runtime.executor import Executor
from cloudq.runtime.outcome import Action, apply_outcome
from cloudq.transports import kombu_forms

if TYPE_CHECKING:
    from collections.abc import Sequence

    from cloudq.app.base import CloudQ


def drain(
    app: CloudQ,
    queues: Sequence[str] | None = None,
    *,
    timeout: float = 30.0,
    raise_failures: bool = True,
) -> int:
    """Process messages until every queue is empty (delayed and in-flight ones included).

    Returns how many messages were processed. Raises ``TaskError`` for the first message
    dead-lettered (a final failure, a bad message) when ``raise_failures``, after draining.
    Raises ``TimeoutError`` if the queues are not empty after ``timeout`` seconds of the app's
    clock: on a ``ManualClock`` (``cloudq.core.clock``) the waits for delayed messages move it.
    """
    names = list(queues or sorted(app.queue_names()))
    executor = Executor(app)
    transport, clock = app.transport, app.clock
    deadline = clock.monotonic() + timeout
    processed = 0
    first_failure: TaskError | None = None
    while True:
        busy = False
        for queue in names:
            for message in transport.receive(queue, 10, wait_seconds=0):
                busy = True
                processed += 1
                outcome = executor.execute(message)
                apply_outcome(transport, message, outcome)
                if outcome.action is Action.DEAD_LETTER and first_failure is None:
                    first_failure = TaskError(message.message_id, "DeadLettered", outcome.reason)
        if not busy and _empty(app, names):
            break
        if clock.monotonic() > deadline:
            raise TimeoutError(f"queues {names} not drained after {timeout} s")
        if not busy:
            clock.sleep(0.01)
    executor.flush_metrics()
    if first_failure is not None and raise_failures:
        raise first_failure
    return processed


def _empty(app: CloudQ, queues: Sequence[str]) -> bool:
    for queue in queues:
        stats = app.transport.stats(queue)
        if stats.visible or stats.in_flight or stats.delayed:
            return False
    return True


@dataclass
class FakeLambdaContext:
    """Lambda's context object: the attributes cloudq reads, with a real deadline."""

    timeout_seconds: float = 60.0
    function_name: str = "cloudq-worker"
    memory_limit_in_mb: int = 256
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.started + self.timeout_seconds - time.monotonic()) * 1000))


def body_as_sent(app: CloudQ, queue: str, body: str) -> str:
    """A received body as SQS holds it (a Celery queue's is kombu's base64: ``kombu_forms``)."""
    return kombu_forms.to_sqs(body) if is_celery_queue(queue, app.settings.celery_queues) else body


def sqs_event(
    app: CloudQ, queue: str | None = None, count: int = 10, region: str = "us-east-1"
) -> dict[str, Any]:
    """Receive up to ``count`` messages of ``queue`` and wrap them as an SQS event, in the
    record shape AWS documents (``messageId``, ``receiptHandle``, ``body``, ``attributes``,
    ``messageAttributes``, ``md5OfBody``, ``eventSource``, ``eventSourceARN``, ``awsRegion``)."""
    queue = queue or app.settings.default_queue
    arn = f"arn:aws:sqs:{region}:000000000000:{app.physical_queue_name(queue)}"
    records = []
    for message in app.transport.receive(queue, count, wait_seconds=0):
        attributes = {
            "ApproximateReceiveCount": str(message.receive_count),
            "SentTimestamp": str(message.sent_timestamp_ms),
            "SenderId": "000000000000",
            "ApproximateFirstReceiveTimestamp": str(int(app.clock.time() * 1000)),
        }
        if message.group_id:
            attributes["MessageGroupId"] = message.group_id
        body = body_as_sent(app, queue, message.body)
        records.append(
            {
                "messageId": message.message_id,
                "receiptHandle": message.receipt_handle,
                "body": body,
                "attributes": attributes,
                "messageAttributes": {
                    name: {"stringValue": value, "dataType": "String"}
                    for name, value in message.attributes.items()
                },
                "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}
