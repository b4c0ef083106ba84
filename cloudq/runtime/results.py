"""The result writer: the executor decides what a run left, this builds its record and writes it.

AWS Powertools' idempotency shape: the handler (``cloudq.runtime.executor``) decides the flow,
the persistence layer writes. A write keeps the message when the backend is down (it comes
back shortly, so no result is lost), and never writes a stale failure over a later attempt.

A record the backend refuses as too large goes down a fixed line of smaller writes, each tried
once, in order (``ResultWriter._smaller``):

1. a SUCCESS value goes to the payload store, the record keeps a pointer (``_offloaded``);
2. a SUCCESS that still cannot be kept becomes a FAILURE saying why (``_as_failure``);
3. a failure's traceback is dropped and its message cut short (``_slimmed``);
4. nothing smaller is left: the outcome stands without a record.

A run of a message that came in Celery's protocol also leaves Celery's meta in the Celery
result backend the app names (``celery_result_backend``), first: if that write fails the
message comes back and nothing of cloudq's record has changed (``ResultWriter._celery_put``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cloudq.backends.base import ResultRecord, State
from cloudq.core import celery_protocol
from cloudq.core.errors import BackendError, PayloadStoreError, ResultTooLargeError
from cloudq.runtime.outcome import BACKEND_RETRY_SECONDS, Outcome, clip

if TYPE_CHECKING:
    from cloudq.app.base import CloudQ
    from cloudq.app.task import Task
    from cloudq.backends.base import ResultBackend
    from cloudq.backends.celery_results import CeleryResults
    from cloudq.core.message import Message
    from cloudq.runtime.attempts import Attempts
    from cloudq.runtime.health import Health

# The docs (guides/workers.md) show this logger's name (``cloudq.execution``: the executor's lines).
logger = logging.getLogger("cloudq.execution")

#: Error texts are clipped so that a failure record always fits a backend (DynamoDB: 400 KB):
#: their start and their end are kept.
MAX_ERROR_MESSAGE_CHARS = 16_384
MAX_TRACEBACK_CHARS = 49_152
#: A slimmed failure keeps this much of its error message (its last resort to fit).
SLIM_ERROR_MESSAGE_CHARS = 1024


@dataclass(frozen=True)
class Write:
    """One write to try: a record, the outcome to return once it is stored, and the attempt
    this delivery holds (``None``: the record's own)."""

    record: ResultRecord
    outcome: Outcome
    held: int | None = None


class ResultWriter:
    """Builds and stores one app's result records. Thread-safe; one per executor."""

    def __init__(self, app: CloudQ, health: Health) -> None:
        self.app = app
        self.health = health
        self._celery: CeleryResults | None = None
        self._lock = threading.Lock()

    def writes_celery(self, message: Message) -> bool:
        """Whether the end of ``message``'s run is also written for Celery's ``AsyncResult``:
        it came in Celery's protocol and the app names a ``celery_result_backend``."""
        return self.app.settings.celery_result_backend is not None and message.from_celery

    @property
    def celery_results(self) -> CeleryResults:
        """The Celery result backend's engine, built on first use."""
        url = self.app.settings.celery_result_backend
        assert url is not None  # only asked for when ``writes_celery``
        with self._lock:
            if self._celery is None:
                from cloudq.backends.celery_results import celery_results_from_url

                self._celery = celery_results_from_url(url)
            return self._celery

    def record(
        self,
        task: Task[Any, Any],
        message: Message,
        state: State,
        attempts: Attempts,
        value: Any = None,
        error: tuple[str, str, str] | None = None,
    ) -> ResultRecord:
        """The record of a run's end: its error texts clipped to fit, expiring as configured."""
        now = self.app.clock.time()
        error_type, text, trace = error or (None, None, None)
        text = None if text is None else clip(text, MAX_ERROR_MESSAGE_CHARS)
        trace = None if trace is None else clip(trace, MAX_TRACEBACK_CHARS)
        return ResultRecord(
            task_id=message.id,
            task_name=task.name,
            state=state,
            value=value,
            error_type=error_type,
            error_message=text,
            traceback=trace,
            attempts=attempts.recorded,
            date_done=now if state.ready else None,
            expires_at=self.app.result_expiry(now),
            history=message.history,
        )

    def store(
        self,
        record: ResultRecord,
        outcome: Outcome,
        held: int | None = None,
        *,
        celery: bool = False,
        keep: bool = True,
    ) -> Outcome:
        """Store the record, then return ``outcome``. If the store fails the message is kept
        (retried shortly) so that no result is lost. ``celery``: also in Celery's format,
        first (``writes_celery``); ``keep=False``: only there (the task ignores its result).

        A failure of a run that lost its message (it overran its timeout, or its heartbeat
        failed) while a later attempt claimed the task is stale: it is not stored over the
        later attempt's record, and its message is left to that attempt. ``held`` is the
        attempt this delivery claimed (the record's own by default)."""
        if celery:
            kept = self._celery_put(record)
            if kept is not None:
                return kept
        backend = self.app.backend
        if backend is None or not keep:
            return outcome
        # Each smaller write is further down the line of fallbacks, so this ends.
        step: Write | Outcome = Write(record, outcome, held)
        while isinstance(step, Write):
            step = self._write(backend, step)
        return step

    def _celery_put(self, record: ResultRecord) -> Outcome | None:
        """Write ``record`` as Celery's meta: ``None`` once written, a retry shortly when the
        Celery result backend is down (the run's end is then written again, when it comes back)."""
        error = None
        if record.error_type is not None:
            error = (record.error_type, record.error_message or "", record.traceback or "")
        meta = celery_protocol.result_meta(
            record.task_id, record.state.value, record.value, error, record.date_done
        )
        keep = self.app.settings.result_ttl or None
        try:
            self.celery_results.put(record.task_id, meta, self.app.clock.time(), keep)
        except BackendError as exc:
            self.health.failed("Celery result backend", exc)
            return Outcome.retry(
                BACKEND_RETRY_SECONDS, reason="Celery result not stored (backend unavailable)"
            )
        self.health.ok("Celery result backend")
        return None

    def _write(self, backend: ResultBackend, write: Write) -> Write | Outcome:
        """One write: its outcome, or the smaller write to try when the record is too large."""
        try:
            return self._put(backend, write)
        except ResultTooLargeError as exc:
            return self._smaller(write, exc)
        except BackendError as exc:
            # The message is kept: it comes back until its result can be stored.
            self.health.failed("result backend (store)", exc)
            return Outcome.retry(BACKEND_RETRY_SECONDS, reason="result not stored (backend unavailable)")

    def _put(self, backend: ResultBackend, write: Write) -> Outcome:
        record = write.record
        if record.state is State.SUCCESS or record.attempts <= 0:
            backend.put(record)
        else:
            held = record.attempts if write.held is None else write.held
            # One conditional write: a read, then a write, would let a later attempt's
            # claim land between the two and be overwritten.
            later = backend.put_unless_superseded(record, held)
            if later is not None:
                logger.warning(
                    "task %s attempt %d ended (%s) after attempt %d took it over; outcome dropped",
                    record.task_id,
                    held,
                    record.error_type,
                    later.attempts,
                )
                return Outcome.retry(BACKEND_RETRY_SECONDS, reason="a later attempt took over")
        self.health.ok("result backend (store)")
        return write.outcome

    def _smaller(self, write: Write, exc: ResultTooLargeError) -> Write | Outcome:
        """The next fallback for a record the backend refused as too large (the module's
        docstring lists them), or the outcome when none is left."""
        record = write.record
        if record.state is State.SUCCESS and record.value_pointer is None:
            offloaded = self._offloaded(write)
            if offloaded is not None:
                return offloaded
        # Deterministic: the same record would be refused again, so it is never retried.
        logger.error("task %s: %s", record.task_id, exc)
        if record.state is State.SUCCESS:
            return self._as_failure(write, exc)
        if record.traceback:  # error texts are clipped to fit, so this is a last resort
            return self._slimmed(write)
        return write.outcome  # nothing smaller to store; the outcome itself still holds

    def _offloaded(self, write: Write) -> Write | Outcome | None:
        """The record with its value in the payload store and a pointer to it; ``None`` when
        the app has no payload store, a retry shortly when the store is down."""
        record = write.record
        try:
            pointer = self.app.codec.offload_value(record.task_id, record.value)
        except PayloadStoreError as exc:
            self.health.failed("payload store", exc)
            return Outcome.retry(BACKEND_RETRY_SECONDS, reason="result not stored (payload store down)")
        if pointer is None:
            return None
        self.health.ok("payload store")
        pointed = record.model_copy(update={"value": None, "value_pointer": pointer})
        return Write(pointed, write.outcome, write.held)

    @staticmethod
    def _as_failure(write: Write, exc: ResultTooLargeError) -> Write:
        """The task ran, but its value cannot be kept: a failure, recorded and dead-lettered
        with the reason (over the record's own attempt)."""
        failure = write.record.model_copy(
            update={
                "state": State.FAILURE,
                "value": None,
                "error_type": type(exc).__name__,
                "error_message": str(exc),
                "traceback": "",
            }
        )
        reason = Outcome.dead_letter(f"{type(exc).__name__}: {exc}")
        return Write(failure, reason.of_run(State.FAILURE, write.outcome.attempt))

    @staticmethod
    def _slimmed(write: Write) -> Write:
        """The failure without its traceback and with its message cut short."""
        record = write.record
        message = (record.error_message or "")[:SLIM_ERROR_MESSAGE_CHARS]
        slim = record.model_copy(update={"traceback": "", "error_message": message})
        return Write(slim, write.outcome, write.held)
