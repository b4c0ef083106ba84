"""Dead letters moved back the way AWS moves them, and duplicate deliveries, for the tests of
a return from the dead-letter queue (on every engine, through the transport's public API).

The SQS console's "Start DLQ redrive" and ``StartMessageMoveTask`` move a message as it is:
the same body and message attributes, under a new message id (AWS: "Amazon SQS doesn't
support filtering and modifying messages while redriving them"; "a new messageID and
enqueueTime are assigned to redriven messages"). Neither ministack nor moto has the API, so
this does what it does: receive from the dead-letter queue, send to the source queue, delete.
"""

from __future__ import annotations

from cloudq import CloudQ
from cloudq.runtime.executor import Executor
from cloudq.runtime.outcome import Action, apply_outcome
from cloudq.transports import OutgoingMessage
from cloudq.transports.base import ReceivedMessage, dead_letter_queue_name, require_sent


def move_back_as_aws_does(app: CloudQ, queue: str = "default") -> list[str]:
    """Move every message of ``queue``'s dead-letter queue back to ``queue`` unchanged (body
    and message attributes); returns the moved messages' new ids."""
    transport, dlq = app.transport, dead_letter_queue_name(queue)
    moved: list[str] = []
    while batch := transport.receive(dlq, 10, wait_seconds=0, visibility_timeout=30):
        for message in batch:
            again = OutgoingMessage(message.body, attributes=dict(message.attributes))
            moved += require_sent(queue, transport.send(queue, [again]))
            transport.ack(dlq, [message.receipt_handle])
    return moved


def receive_one(app: CloudQ, visibility: int = 30, queue: str = "default") -> ReceivedMessage:
    [received] = app.transport.receive(queue, 1, wait_seconds=5, visibility_timeout=visibility)
    return received


def dead_letter_with_a_duplicate(app: CloudQ, executor: Executor, attempts: int) -> ReceivedMessage:
    """Run the one message of the default queue (a task failing ``attempts`` times in all)
    in-process until its last attempt dead-letters it, while the same message is delivered
    once more: the last delivery's visibility ran out (0 here) before its dead-lettering was
    applied, so the broker handed the message out again. Returns that duplicate delivery."""
    for _ in range(attempts - 1):
        received = receive_one(app)
        outcome = executor.execute(received)
        assert outcome.action is Action.RETRY, outcome
        apply_outcome(app.transport, received, outcome)
    last = receive_one(app, visibility=0)
    outcome = executor.execute(last)
    assert outcome.action is Action.DEAD_LETTER, outcome
    duplicate = receive_one(app)
    apply_outcome(app.transport, last, outcome)
    assert duplicate.message_id == last.message_id
    assert duplicate.receive_count > last.receive_count
    return duplicate
