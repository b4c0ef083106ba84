"""The executor: one received message in, one ``Outcome`` out.

decode → verify → find the task → wait for eta (hop) → check attempts → decode arguments →
admit (rate limit, concurrency cap: ``cloudq.runtime.flow``) → claim the task id → run →
store the result → outcome. The long-polling worker and the Lambda handler only *apply*
outcomes; nothing about retries, states or results is written elsewhere.

Attempts (what counts as one, what a hop and a handed-back delivery do not count, a replayed
message's base) are counted by ``Attempts`` (``cloudq.runtime.attempts``), and only there.

A message moved back from the dead-letter queue by the broker (cloudq's dead-letter note still
on it) is re-sent as ``cloudq dlq replay`` sends it: a new life with its whole retry budget.
"""

from __future__ import annotations

import logging
import math
import socket
import traceback
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from cloudq.app.task import Task
from cloudq.backends.base import ClaimStatus, Delivery, State
from cloudq.core.errors import (
    ArgumentError,
    BackendError,
    CloudQError,
    ConfigurationError,
    DecodeError,
    MessageError,
    PayloadStoreError,
    Retry,
    SignatureError,
)
from cloudq.core.message import Message
from cloudq.core.request import Request
from cloudq.runtime import workflow
from cloudq.runtime.attempts import Attempts
from cloudq.runtime.flow import Flow, Lease
from cloudq.runtime.health import Health
from cloudq.runtime.metrics import EmfMetrics
from cloudq.runtime.outcome import BACKEND_RETRY_SECONDS, Action, Outcome, Prepared, clip, log_outcome
from cloudq.runtime.replay import new_life
from cloudq.runtime.results import ResultWriter
from cloudq.runtime.soft_limit import SoftLimits
from cloudq.runtime.task_tokens import TaskTokens
from cloudq.tracing import run_span
from cloudq.transports.base import MAX_REASON_CHARS, DeadLetterNote, ReceivedMessage, is_fifo

if TYPE_CHECKING:
    from cloudq.app.base import CloudQ

# The docs (guides/workers.md) show this logger's name (``cloudq.execution``: the executor's lines).
logger = logging.getLogger("cloudq.execution")

#: On Lambda a run's deadline comes this long before the invocation ends: time to clean up
#: and store the outcome before Lambda stops the function.
LAMBDA_DEADLINE_MARGIN_SECONDS = 1.0
#: A claim's lease outlives the task's timeout by this much (or lasts this long untimed).
LEASE_MARGIN_SECONDS = 30.0
DEFAULT_LEASE_SECONDS = 300.0


class TimeLimitExceeded(Exception):  # noqa: N818 - named like Celery's
    """A task ran past its ``timeout``."""


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"


class Executor:
    """Turns received messages into outcomes for one app. Thread-safe; one per worker."""

    def __init__(self, app: CloudQ, worker_id: str | None = None) -> None:
        self.app = app
        self.worker_id = worker_id or new_worker_id()
        self.health = Health()
        #: Builds and stores the result records (the flow is decided here, written there).
        self.results = ResultWriter(app, self.health)
        #: Per-run EMF lines (``cloudq.runtime.metrics``) when ``settings.metrics`` is on.
        self.metrics = EmfMetrics(app.name) if app.settings.metrics else None
        #: Rate limits and concurrency caps (``cloudq.runtime.flow``).
        self.flow = Flow(app, self.health, self.worker_id)
        #: Reports to Step Functions the runs of messages carrying a task token.
        self.tokens = TaskTokens()
        #: Raises ``SoftTimeLimitExceeded`` in runs past their ``soft_timeout``.
        self.soft_limits = SoftLimits(app.clock)
        #: When the Lambda invocation running this executor ends (epoch seconds on the app's
        #: clock), set by ``cloudq.aws_lambda`` per record; ``None`` on a worker.
        self.invocation_ends: float | None = None

    def flush_metrics(self) -> None:
        """Hand on the EMF lines written so far (``cloudq.runtime.metrics``); adapters call it."""
        if self.metrics is not None:
            self.metrics.flush()

    def prepare(self, received: ReceivedMessage) -> Prepared:
        """Decode a received message once (its only decoding): envelope and task, or the
        dead-letter outcome of a body that is not a task of this app."""
        try:
            message = self._decode(received)
        except (DecodeError, SignatureError) as exc:
            return Prepared(received, refused=Outcome.dead_letter(f"{type(exc).__name__}: {exc}"))
        task = self.app.tasks.get(message.task)
        if task is None:
            return Prepared(received, message, refused=Outcome.dead_letter(f"unknown task {message.task!r}"))
        return Prepared(received, message, task)

    def execute(self, received: ReceivedMessage | Prepared) -> Outcome:
        """Never raises for a bad message: every failure becomes an outcome (logged)."""
        prepared = received if isinstance(received, Prepared) else self.prepare(received)
        started, started_at = self.app.clock.monotonic(), self.app.clock.time()
        outcome = self._execute(prepared)
        seconds = self.app.clock.monotonic() - started
        log_outcome(prepared, outcome, seconds)
        if self.metrics is not None:
            self.metrics.record(prepared, outcome, seconds, started_at)
        return outcome

    def _execute(self, prepared: Prepared) -> Outcome:
        if prepared.refused is not None:
            self._refused(prepared, prepared.refused)
            return prepared.refused
        received, message, task = prepared.received, prepared.message, prepared.task
        assert message is not None and task is not None
        note = DeadLetterNote.from_attributes(received.attributes)
        if note is not None and note.source_queue == received.queue:
            # A dead-letter copy moved back to the queue it came from. A note naming another
            # queue (or none) is not cloudq's on a return: anyone may send any attribute.
            return self._returned(message, received.queue, note)
        attempts = Attempts.of_delivery(message, received)
        now = self.app.clock.time()
        if message.eta is not None and message.eta > now:  # never early, by any fraction
            return self._hop(message, received.queue, attempts, message.eta - now)
        if message.expires is not None and message.expires < now:
            return self._fail(
                task, message, attempts.not_run(), "Expired", "task expired before it could run"
            )
        if not self._claims(task) and attempts.exhausted(task.max_retries):
            return self._give_up(task, message, attempts)
        arguments: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        # A pointer's arguments are read once the task is claimed, unless a flow key needs them.
        if message.payload is None or task.flow.needs_arguments:
            loaded = self._arguments(task, message, attempts)
            if isinstance(loaded, Outcome):
                return loaded
            arguments = loaded
        # Admitted (rate slot, concurrency lease) before the claim: waiting is not an attempt.
        admitted = self.flow.admit(task, message, received, attempts, arguments)
        if isinstance(admitted, Outcome):
            return admitted
        try:
            return self._claim_and_run(task, message, received, attempts, arguments, admitted)
        finally:
            self.flow.release(admitted)  # when the run did not get to release it

    def _refused(self, prepared: Prepared, refused: Outcome) -> None:
        """The Step Functions state that sent a refused body fails now, not at its timeout."""
        received = prepared.received
        if prepared.message is not None:  # read, but not a task of this app
            self.tokens.failed(prepared.message, "UnknownTaskError", refused.reason)
            return
        token = self.app.codec.task_token_of(received.body, received.queue)
        if token is not None:
            error_type, _, text = refused.reason.partition(": ")
            self.tokens.token_failed(token, received.message_id, error_type, text)

    def _arguments(
        self, task: Task[Any, Any], message: Message, attempts: Attempts
    ) -> tuple[tuple[Any, ...], dict[str, Any]] | Outcome:
        """The task's arguments (read from the payload store for a pointer), or the outcome
        of arguments that cannot be had: a failure (they do not fit, the object is gone or
        altered) or a retry shortly (the store is unavailable)."""
        try:
            json_args, json_kwargs = self.app.codec.load_arguments(message)
            if message.payload is not None:
                self.health.ok("payload store")
            return task.arguments.decode(json_args, json_kwargs)
        except ArgumentError as exc:
            return self._fail(task, message, attempts, "ArgumentError", str(exc))
        except PayloadStoreError as exc:
            self.health.failed("payload store", exc)
            return Outcome.retry(BACKEND_RETRY_SECONDS, reason="arguments not read (payload store down)")
        except (MessageError, ConfigurationError) as exc:  # gone, altered, or no store here
            return self._fail(task, message, attempts, type(exc).__name__, str(exc))

    def _claims(self, task: Task[Any, Any]) -> bool:
        """Whether runs of ``task`` claim its id first (exactly-once effect); without a claim
        the broker's receive count stands in for attempts."""
        return self.app.backend is not None and task.deduplicate

    def _give_up(self, task: Task[Any, Any], message: Message, attempts: Attempts) -> Outcome:
        """Earlier runs ended without an outcome (the worker died, or the task overran). This
        delivery does not run; its failure is stored over the attempt it holds."""
        ran = attempts.before()
        text = f"gave up after {ran.number} attempts (the worker died or the task timed out)"
        return self._fail(task, message, ran, "MaxRetriesExceeded", text, held=attempts.recorded)

    def _decode(self, received: ReceivedMessage) -> Message:
        return self.app.codec.decode(received.body, received.message_id, received.queue)

    def _returned(self, message: Message, queue: str, note: DeadLetterNote) -> Outcome:
        """A message moved back from the dead-letter queue as it was (the SQS console's "Start
        DLQ redrive", StartMessageMoveTask): cloudq's dead-letter note is still on it, which no
        delivery of the original message carries. Its body still holds the spent attempts, so
        it is re-sent as ``cloudq dlq replay`` sends it: a new life. Not an attempt."""
        try:
            again = new_life(self.app, message, note.reason)
        except BackendError as exc:
            self.health.failed("result backend (read)", exc)
            return Outcome.retry(BACKEND_RETRY_SECONDS, reason="not replayed (backend unavailable)")
        reason = "back from the dead-letter queue: re-sent as a new life"
        return Outcome(Action.RESEND, reason=reason, body=self._encode(again, queue))

    def _hop(self, message: Message, queue: str, attempts: Attempts, wait: float) -> Outcome:
        """Re-send a message that came before its eta (beyond the broker's longest delay, or
        early by a fraction of a second); not an attempt. Delays are whole seconds: rounded
        up, so the next delivery is never early."""
        delay = min(math.ceil(wait), self.app.transport.max_delay_seconds)
        hopped = message.model_copy(update={"retries": attempts.for_hop()})
        body = self._encode(hopped, queue)
        return Outcome(Action.RESEND, delay_seconds=delay, body=body)

    def _encode(self, message: Message, queue: str) -> str:
        """The body re-sent to ``queue`` (the one it came from: in Celery's format there)."""
        return self.app.encode(message, queue)

    def _claim_and_run(
        self,
        task: Task[Any, Any],
        message: Message,
        received: ReceivedMessage,
        attempts: Attempts,
        arguments: tuple[tuple[Any, ...], dict[str, Any]] | None,
        lease: Lease | None,
    ) -> Outcome:
        if self._claims(task):
            claimed = self._claim(task, message, received, attempts)
            if isinstance(claimed, Outcome):
                return claimed
            attempts = claimed
            if attempts.exhausted(task.max_retries):
                return self._give_up(task, message, attempts)
        loaded = self._arguments(task, message, attempts) if arguments is None else arguments
        if isinstance(loaded, Outcome):
            return loaded
        args, kwargs = loaded
        request = Request(
            id=message.id,
            task=task.name,
            attempt=attempts.number,
            args=args,
            kwargs=kwargs,
            queue=received.queue,
            parent_id=message.parent_id,
            root_id=message.root_id,
            owner=self.worker_id if self._claims(task) else None,
            deadline=self._deadline(task),
            clock=self.app.clock,
        )
        return self._run(task, message, received, request, attempts, lease)

    def _deadline(self, task: Task[Any, Any]) -> float | None:
        """The run's deadline: its ``soft_timeout`` from now, and on Lambda no later than
        ``LAMBDA_DEADLINE_MARGIN_SECONDS`` before the invocation ends."""
        bounds = []
        if task.flow.soft_timeout is not None:
            bounds.append(self.app.clock.time() + task.flow.soft_timeout)
        if self.invocation_ends is not None:
            bounds.append(self.invocation_ends - LAMBDA_DEADLINE_MARGIN_SECONDS)
        return min(bounds) if bounds else None

    @staticmethod
    def _soft_deadline(task: Task[Any, Any], request: Request) -> float | None:
        """When ``SoftTimeLimitExceeded`` is raised: only in a task with a ``soft_timeout``
        (a task without one is not interrupted, on Lambda either), at its deadline."""
        return request.deadline if task.flow.soft_timeout is not None else None

    def _claim(
        self, task: Task[Any, Any], message: Message, received: ReceivedMessage, attempts: Attempts
    ) -> Attempts | Outcome:
        """Claim the task id for this run: the attempts the claim counted, or the outcome of a
        claim that does not run the task (done already, revoked, running elsewhere, no backend)."""
        backend = self.app.backend
        assert backend is not None  # only a task that claims gets here
        lease = (task.timeout or DEFAULT_LEASE_SECONDS) + LEASE_MARGIN_SECONDS
        now = self.app.clock.time()
        try:
            delivery = Delivery(message_id=received.message_id, receive_count=received.receive_count)
            claim = backend.claim(
                message.id, task.name, self.worker_id, lease, now, self.app.result_expiry(now), delivery
            )
        except BackendError as exc:
            self.health.failed("result backend (claim)", exc)
            return Outcome.retry(BACKEND_RETRY_SECONDS, reason="not claimed (backend unavailable)")
        self.health.ok("result backend (claim)")
        if claim.status is ClaimStatus.ALREADY_SUCCEEDED:
            value = claim.record.value if claim.record else None
            return self._ended(message, Outcome.ack(), State.SUCCESS, value=value, redelivered=True)
        if claim.status is ClaimStatus.REVOKED:
            revoked = Outcome(Action.ACK, reason="revoked: acknowledged without running")
            return self._ended(message, revoked, State.REVOKED, error=("TaskRevokedError", "revoked"))
        if claim.status is ClaimStatus.LEASED:
            return Outcome.retry(claim.lease_remaining, reason="running elsewhere (lease held)")
        return attempts if claim.record is None else attempts.claimed(claim.record.attempts)

    def _run(
        self,
        task: Task[Any, Any],
        message: Message,
        received: ReceivedMessage,
        request: Request,
        attempts: Attempts,
        lease: Lease | None,
    ) -> Outcome:
        started = self.app.clock.time()
        try:
            try:
                with run_span(task.name, message.traceparent) as traceparent, self.tokens.beating(message):
                    if traceparent is not None:
                        request = replace(request, traceparent=traceparent)
                    # before_task, the task, after_task; SoftTimeLimitExceeded past soft_timeout
                    deadline = self._soft_deadline(task, request)
                    value = self.soft_limits.run(deadline, self.app.hooks.run, task, request)
            finally:
                # The run is over: its concurrency slot frees before its outcome is stored.
                self.flow.release(lease)
        except Retry as retry:
            cause = retry.exc or retry
            return self._retry_or_fail(task, message, received, attempts, cause, retry.countdown)
        except Exception as exc:  # the task's own failure, whatever it is
            if task.policy.retries(exc):
                return self._retry_or_fail(task, message, received, attempts, exc, None)
            return self._fail(task, message, attempts, type(exc).__name__, str(exc), _tb(exc))
        elapsed = self.app.clock.time() - started
        if task.timeout is not None and elapsed > task.timeout:
            # Past its time limit the broker may already have handed the message to another
            # worker (the heartbeat stopped at the timeout): this late result is not trusted.
            overrun = TimeLimitExceeded(f"ran {elapsed:.1f} s, over its {task.timeout:g} s limit")
            return self._retry_or_fail(task, message, received, attempts, overrun, None)
        return self._succeeded(task, message, attempts, value, started)

    def _succeeded(
        self, task: Task[Any, Any], message: Message, attempts: Attempts, value: Any, started: float
    ) -> Outcome:
        """A run that returned ``value`` in time: its result stored (if kept), then its
        workflow's next steps."""
        try:
            stored = task.arguments.result_to_json(value)
        except ArgumentError as exc:  # deterministic: retrying would return the same value
            return self._fail(task, message, attempts, "ResultError", str(exc))
        success = Outcome(Action.ACK, state=State.SUCCESS, attempt=attempts.number)
        keeps = (self.app.backend is not None and not task.ignore_result) or message.has_workflow
        celery = self.results.writes_celery(message)  # Celery's AsyncResult reads it there
        if not keeps and not celery:
            # Nothing to store, so no record is built; a workflow's link always records (its
            # chain or chord reads the value).
            self.app.codec.release(message)
            return self._ended(message, success, State.SUCCESS, value=stored)
        record = self.results.record(task, message, State.SUCCESS, attempts, value=stored)
        record = record.model_copy(update={"date_started": started})
        outcome = self.results.store(record, success, celery=celery, keep=keeps)
        if outcome.state is State.SUCCESS:
            self.app.codec.release(message)
        return self._ended(message, outcome, outcome.state, value=stored, error=_error_of(outcome))

    def _retry_or_fail(
        self,
        task: Task[Any, Any],
        message: Message,
        received: ReceivedMessage,
        attempts: Attempts,
        exc: BaseException,
        countdown: float | None,
    ) -> Outcome:
        error_type, text, trace = type(exc).__name__, str(exc), _tb(exc)
        attempt = attempts.number
        if not attempts.may_retry(task.max_retries):
            text = f"{text} (gave up after {attempt} attempts)"
            return self._fail(task, message, attempts, error_type, text, trace)
        delay = task.policy.delay_for(attempt) if countdown is None else countdown
        record = self.results.record(task, message, State.RETRY, attempts, error=(error_type, text, trace))
        if is_fifo(received.queue):
            # A FIFO message is never re-sent (that would break its group's order): it waits
            # in place, as long as the broker's longest delay at most.
            delay = min(delay, self.app.transport.max_delay_seconds)
        why = clip(f"{error_type}: {text}", MAX_REASON_CHARS)
        self.app.hooks.retrying(task, message, attempt, delay, (error_type, text))
        if delay <= self.app.transport.max_delay_seconds:
            retry = Outcome.retry(delay, why).of_run(State.RETRY, attempt)
            return self.results.store(record, retry, celery=self.results.writes_celery(message))
        # Longer than the broker can hold a message: re-send with the attempts made so far
        # and an eta; it hops until then.
        again = message.model_copy(
            update={"retries": attempts.for_resend(), "eta": self.app.clock.time() + delay, "rate_slot": None}
        )
        resend = Outcome(
            Action.RESEND,
            delay_seconds=self.app.transport.max_delay_seconds,
            reason=why,
            body=self._encode(again, received.queue),
            state=State.RETRY,
            attempt=attempt,
        )
        return self.results.store(record, resend, celery=self.results.writes_celery(message))

    def _fail(
        self,
        task: Task[Any, Any],
        message: Message,
        attempts: Attempts,
        error_type: str,
        text: str,
        trace: str = "",
        held: int | None = None,
    ) -> Outcome:
        """A final failure: FAILURE recorded, message to the dead-letter queue."""
        self.app.hooks.failed(task, message, attempts.number, (error_type, text))
        record = self.results.record(task, message, State.FAILURE, attempts, error=(error_type, text, trace))
        failure = Outcome.dead_letter(f"{error_type}: {text}").of_run(State.FAILURE, attempts.number)
        outcome = self.results.store(record, failure, held=held, celery=self.results.writes_celery(message))
        return self._ended(message, outcome, outcome.state, error=(error_type, text))

    def _ended(
        self,
        message: Message,
        outcome: Outcome,
        state: State | None,
        value: Any = None,
        error: tuple[str, str] = ("", ""),
        redelivered: bool = False,
    ) -> Outcome:
        """The workflow steps of a task that ended (``cloudq/workflow.py``), then the report to
        the Step Functions state that sent it (``TaskTokens``), then ``outcome``; if a step
        fails, the message is kept and comes back to repeat it."""
        if state not in (State.SUCCESS, State.FAILURE, State.REVOKED):
            return outcome
        if outcome.action not in (Action.ACK, Action.DEAD_LETTER):
            return outcome  # the end was not stored: nothing to follow yet
        if message.has_workflow:
            try:
                workflow.finished(self.app, message, state, value, error, redelivered)
            except CloudQError as exc:
                logger.warning(
                    "task %s: workflow step not done (%s); its message comes back", message.id, exc
                )
                return Outcome.retry(BACKEND_RETRY_SECONDS, reason=f"workflow step not done: {exc}")
        if state is State.SUCCESS:
            self.tokens.succeeded(message, value)
        else:
            self.tokens.failed(message, *error)
        return outcome


def _error_of(outcome: Outcome) -> tuple[str, str]:
    """(type, message) of a dead-letter outcome's reason (``Type: message``)."""
    error_type, _, text = outcome.reason.partition(": ")
    return error_type, text


def _tb(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
