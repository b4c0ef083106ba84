"""The Lambda entry point for an SQS event source mapping.

Each record goes through the same executor as the long-polling worker. The response is a
partial batch response (``ReportBatchItemFailures``): records that succeeded, were
dead-lettered, or were re-sent are not listed, so the event source mapping deletes them; a
retry changes the record's visibility to its backoff delay and lists it. The handler never
raises because of a record.

- FIFO: after the first failure in a message group, the later records of that group in the
  batch are reported as failed without running, and handed back at once (visibility 0): the
  group stays blocked while the failed record waits out its retry delay, then resumes in
  order, without waiting for the queue's visibility timeout.
- Deadline: a record whose task cannot finish before the function's deadline is not started;
  it is handed back at once (visibility 0) instead of being cut off by the runtime.

Deploy with the handler ``cloudq.aws_lambda.handler`` and ``CLOUDQ_APP=module:app``; importing
this module does configuration only.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
from typing import TYPE_CHECKING, Any, Protocol

from cloudq.core.deadlines import seconds_needed
from cloudq.core.errors import CloudQError, ConfigurationError
from cloudq.core.naming import is_celery_queue, logical_queue_from_arn
from cloudq.runtime.executor import Executor
from cloudq.runtime.lambda_logging import configure_lambda_logging, reset_request_id, set_request_id
from cloudq.runtime.outcome import Action, Prepared, apply_outcome
from cloudq.transports import kombu_forms
from cloudq.transports.base import ReceivedMessage

if TYPE_CHECKING:
    from cloudq.app.base import CloudQ

logger = logging.getLogger(__name__)


class LambdaContext(Protocol):
    function_name: str
    aws_request_id: str

    def get_remaining_time_in_millis(self) -> int: ...


_executors: dict[int, Executor] = {}
_lock = threading.Lock()


def _executor(app: CloudQ) -> Executor:
    """One executor per app per execution environment (warm invocations reuse it)."""
    key = id(app)
    with _lock:
        if key not in _executors:
            _executors[key] = Executor(app)
        return _executors[key]


def _logical_queue(app: CloudQ, source_arn: str) -> str:
    """``arn:aws:sqs:us-east-1:123:shop-emails`` → ``emails`` for app ``shop``."""
    return logical_queue_from_arn(app.name, source_arn)


def to_received(app: CloudQ, record: dict[str, Any]) -> ReceivedMessage:
    """An SQS event record in the shape the executor takes."""
    attributes = record.get("attributes", {})
    message_attributes = {
        name: value.get("stringValue", "")
        for name, value in record.get("messageAttributes", {}).items()
        if isinstance(value, dict)
    }
    queue = _logical_queue(app, record.get("eventSourceARN", ""))
    body = record.get("body", "")
    if is_celery_queue(queue, app.settings.celery_queues):
        body = kombu_forms.from_sqs(body)  # as the SQS transport hands it to the codec
    return ReceivedMessage(
        queue=queue,
        message_id=record["messageId"],
        receipt_handle=record["receiptHandle"],
        body=body,
        receive_count=int(attributes.get("ApproximateReceiveCount", 1)),
        sent_timestamp_ms=int(attributes.get("SentTimestamp", 0)),
        attributes=message_attributes,
        group_id=attributes.get("MessageGroupId"),
    )


def _seconds_needed(prepared: Prepared) -> float:
    """How long the record's task may run; undecodable bodies and unknown tasks are quick
    (they dead-letter)."""
    return seconds_needed(prepared.task) if prepared.task is not None else 0.0


def handle_sqs_event(app: CloudQ, event: dict[str, Any], context: LambdaContext | None) -> dict[str, Any]:
    """Run an SQS event's records; return the partial batch response."""
    configure_lambda_logging()
    token = set_request_id(context.aws_request_id if context is not None else None)
    try:
        return _handle_records(app, event, context)
    finally:
        reset_request_id(token)


def _handle_records(app: CloudQ, event: dict[str, Any], context: LambdaContext | None) -> dict[str, Any]:
    failures: list[str] = []
    failed_groups: set[str] = set()
    executor = _executor(app)
    for record in event.get("Records", []):
        received = to_received(app, record)
        if received.group_id is not None and received.group_id in failed_groups:
            _hand_back(app, received)
            failures.append(received.message_id)
            continue
        if not _process(app, executor, received, context):
            failures.append(received.message_id)
            if received.group_id is not None:
                failed_groups.add(received.group_id)
    executor.flush_metrics()  # before the invocation ends and the environment may be frozen
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}


def _process(
    app: CloudQ, executor: Executor, received: ReceivedMessage, context: LambdaContext | None
) -> bool:
    """Run one record; True when the mapping may delete it."""
    try:
        prepared = executor.prepare(received)
        if context is not None:
            remaining = context.get_remaining_time_in_millis() / 1000
            if remaining < _seconds_needed(prepared):
                _hand_back(app, received)
                return False
            # No heartbeat renews a concurrency lease here: it lasts the invocation.
            executor.flow.lease_seconds = remaining
            executor.invocation_ends = app.clock.time() + remaining  # bounds Request.deadline
        outcome = executor.execute(prepared)
        if outcome.action is Action.ACK:
            return True  # the event source mapping deletes what is not listed
        apply_outcome(app.transport, prepared, outcome)
        return outcome.action is not Action.RETRY
    except Exception:  # one record never fails the others
        logger.exception("record %s failed in the handler", received.message_id)
        return False


def _hand_back(app: CloudQ, received: ReceivedMessage) -> None:
    """Make an unstarted record visible again now, not after the queue's visibility timeout.
    Best effort: if this fails, the record still comes back when its visibility ends."""
    try:
        app.transport.change_visibility(received.queue, received.receipt_handle, 0)
    except CloudQError:
        logger.warning(
            "could not hand back record %s; it returns after its visibility timeout", received.message_id
        )


_app: CloudQ | None = None


def handler(event: dict[str, Any], context: LambdaContext | None) -> dict[str, Any]:
    """Ready-made entry point: runs the app named by ``CLOUDQ_APP=module:app``."""
    global _app
    if _app is None:
        reference = os.environ.get("CLOUDQ_APP")
        if not reference:
            raise ConfigurationError("set CLOUDQ_APP=module:app for cloudq.aws_lambda.handler")
        from cloudq.app.loading import load_app

        configure_lambda_logging()  # before the app's import: its own lines are formatted too

        _app = load_app(reference)
        _freeze_startup_objects()
    return handle_sqs_event(_app, event, context)


def _freeze_startup_objects() -> None:
    """Move what the cold start built (modules, the app, its tasks), which lives as long as the
    execution environment, out of the collector's reach: otherwise each full collection, many
    of them while botocore builds the first clients, walks all of pydantic, botocore and the
    app again (~12 ms of a cold start, issue 14). Young garbage is collected first so that
    nothing unreachable is kept."""
    gc.collect(1)
    gc.freeze()
