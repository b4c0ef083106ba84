"""The outcome vocabulary: what the executor decides for a received message, and how an adapter
applies it.

``Outcome``: ack, retry after N seconds, re-send, or dead-letter with a reason (``Action``), with
the state and attempt of the run that led to it. ``Prepared``: a received message decoded once.
``apply_outcome`` carries an outcome out on the broker; ``log_outcome`` writes its one line.
The executor (``cloudq.runtime.executor``) makes outcomes; the long-polling worker and the
Lambda handler only apply them.
"""

from __future__ import annotations

import enum
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cloudq.app.task import Task
from cloudq.backends.base import State
from cloudq.core.message import Message
from cloudq.tracing import trace_id
from cloudq.transports.base import MAX_REASON_CHARS, OutgoingMessage, ReceivedMessage, require_sent

if TYPE_CHECKING:
    from cloudq.transports.base import Transport

# The docs (guides/workers.md) show this logger's name (the outcome lines); the executor's other parts
# write under it too.
logger = logging.getLogger("cloudq.execution")

#: When a result, a claim or a workflow step cannot be written, the message comes back after
#: this long to try again.
BACKEND_RETRY_SECONDS = 5


class Action(str, enum.Enum):
    ACK = "ack"  # done (success, or already done): delete the message
    RETRY = "retry"  # make the same message visible again after delay_seconds
    RESEND = "resend"  # send ``body`` with delay_seconds, then delete the original
    DEAD_LETTER = "dead_letter"  # move to the dead-letter queue with ``reason``


@dataclass(frozen=True)
class Outcome:
    action: Action
    delay_seconds: int = 0
    reason: str = ""
    body: str | None = None
    #: What the run left: SUCCESS, RETRY or FAILURE; ``None`` when the task did not run
    #: (a duplicate, a held lease, a hop, a refused message).
    state: State | None = None
    #: The attempt of this run (1 for the first), 0 when the task did not run.
    attempt: int = 0

    @classmethod
    def ack(cls) -> Outcome:
        return cls(Action.ACK)

    @classmethod
    def retry(cls, delay: float, reason: str = "") -> Outcome:
        return cls(Action.RETRY, delay_seconds=max(0, math.ceil(delay)), reason=reason)

    @classmethod
    def dead_letter(cls, reason: str) -> Outcome:
        return cls(Action.DEAD_LETTER, reason=clip(reason, MAX_REASON_CHARS))

    def of_run(self, state: State, attempt: int) -> Outcome:
        return Outcome(self.action, self.delay_seconds, self.reason, self.body, state, attempt)


@dataclass(frozen=True)
class Prepared:
    """A received message decoded once: its envelope and task, or the outcome refusing it.

    The adapters read what they need before running (the task's timeout, for the heartbeat
    and the Lambda deadline) from here, never from the body."""

    received: ReceivedMessage
    message: Message | None = None
    task: Task[Any, Any] | None = None
    refused: Outcome | None = None

    @property
    def timeout(self) -> float | None:
        return None if self.task is None else self.task.timeout

    def describe(self) -> str:
        """``name[task id]`` for log lines, or the broker message id of a refused body."""
        if self.message is None:
            return f"message {self.received.message_id}"
        return f"{self.message.task}[{self.message.id}]"

    def log_fields(self) -> dict[str, str]:
        if self.message is None:
            return {"message_id": self.received.message_id}
        fields = {"task_id": self.message.id, "task_name": self.message.task}
        if self.message.traceparent is not None:
            fields["trace_id"] = trace_id(self.message.traceparent)
        return fields


def clip(text: str, limit: int) -> str:
    """``text`` if it has at most ``limit`` characters, else its start and its end around a
    note of what was left out (a traceback's first frames and its final error line both stay)."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n... ({len(text) - 2 * half} characters left out) ...\n{text[-half:]}"


def apply_outcome(transport: Transport, prepared: Prepared | ReceivedMessage, outcome: Outcome) -> None:
    """Apply an outcome to the broker. Callers that batch deletes handle ``ACK`` themselves.

    A dead-lettering is logged here, once it is done, with the dead-letter copy's message id
    (the id ``cloudq dlq list`` shows)."""
    if isinstance(prepared, ReceivedMessage):
        prepared = Prepared(prepared)
    received = prepared.received
    if outcome.action is Action.ACK:
        transport.ack(received.queue, [received.receipt_handle])
    elif outcome.action is Action.RETRY:
        transport.change_visibility(received.queue, received.receipt_handle, outcome.delay_seconds)
    elif outcome.action is Action.RESEND:
        assert outcome.body is not None
        resent = OutgoingMessage(outcome.body, outcome.delay_seconds, group_id=received.group_id)
        require_sent(received.queue, transport.send(received.queue, [resent]))
        transport.ack(received.queue, [received.receipt_handle])
    else:
        copy_id = transport.dead_letter(received, outcome.reason)
        logger.warning(
            "%s %s%s → dead-letter queue of %s as message %s: %s",
            prepared.describe(),
            "FAILURE" if outcome.state is State.FAILURE else "refused",
            f" (attempt {outcome.attempt})" if outcome.attempt else "",
            received.queue,
            copy_id,
            outcome.reason,
            extra=outcome_fields(prepared, outcome),
        )


def outcome_fields(prepared: Prepared, outcome: Outcome) -> dict[str, object]:
    """The structured fields of an outcome's line: the message's, and the attempt of a run."""
    fields: dict[str, object] = dict(prepared.log_fields())
    if outcome.attempt:
        fields["attempt"] = outcome.attempt
    return fields


def log_outcome(prepared: Prepared, outcome: Outcome, seconds: float) -> None:
    """One line per outcome (dead-letterings are logged by ``apply_outcome`` when done)."""
    if outcome.action is Action.DEAD_LETTER or not logger.isEnabledFor(logging.INFO):
        return
    where = prepared.describe()
    if outcome.state is None:
        fields: dict[str, object] = dict(prepared.log_fields())
        if outcome.action is Action.ACK:
            why = outcome.reason or "already succeeded: duplicate delivery acknowledged"
            logger.info("%s %s", where, why, extra=fields)
        elif outcome.action is Action.RETRY:
            logger.info("%s back in %d s: %s", where, outcome.delay_seconds, outcome.reason, extra=fields)
        elif outcome.reason:
            logger.info("%s %s", where, outcome.reason, extra=fields)
        else:
            logger.debug("%s waits for its eta: re-sent", where, extra=fields)
        return
    detail = f" in {seconds:.3f} s (attempt {outcome.attempt})"
    fields = outcome_fields(prepared, outcome)
    if outcome.state is State.RETRY:
        # A re-sent retry waits longer than the broker's longest delay, its first hop.
        later = outcome.delay_seconds if outcome.action is Action.RETRY else f"> {outcome.delay_seconds}"
        logger.info("%s RETRY%s: %s; next try in %s s", where, detail, outcome.reason, later, extra=fields)
    else:
        logger.info("%s %s%s", where, outcome.state.value, detail, extra=fields)
