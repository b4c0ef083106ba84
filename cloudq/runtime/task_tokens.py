"""Reporting back to AWS Step Functions: a run's end and its heartbeats, for a message that a
``.waitForTaskToken`` state sent (it carries ``task_token``; docs/guides/step-functions.md).

The executor calls this at the end of every run that ended (its record stored), on the worker
and on Lambda alike:

- success: ``SendTaskSuccess`` with the task's JSON result as the output. An output over Step
  Functions' limit (``MAX_OUTPUT_BYTES``) fails the state instead, saying so
  (``RESULT_TOO_LARGE_ERROR``); the task's own result is kept as it is.
- final failure (never a retry), revocation, or a body refused (unreadable, unknown task, bad
  signature): ``SendTaskFailure``, error the exception type, cause its message.
- while the task runs: ``SendTaskHeartbeat`` every half of the message's
  ``heartbeat_seconds`` (one thread per executor beats every running token that asks).

Reporting never changes the task's outcome: a token that has expired, is invalid or is done
already (``TaskTimedOut``, ``InvalidToken``, ``TaskDoesNotExist``), or a call that fails, is
logged and the outcome stands.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from cloudq.core import aws_errors
from cloudq.core.aws import aws_client

if TYPE_CHECKING:
    from cloudq.core.message import Message

# docs/guides/step-functions.md documents this logger's name.
logger = logging.getLogger("cloudq.stepfunctions")

#: Step Functions' limit on a task's output (and on any state's input or output): 256 KiB of
#: UTF-8 JSON.
MAX_OUTPUT_BYTES = 256 * 1024
#: SendTaskFailure's limits: ``error`` 256 characters, ``cause`` 32768.
MAX_ERROR_CHARS = 256
MAX_CAUSE_CHARS = 32_768
#: The error a state fails with when the task's result is over ``MAX_OUTPUT_BYTES``.
RESULT_TOO_LARGE_ERROR = "cloudq.ResultTooLarge"
#: Step Functions' answers about the token itself: logged, the task's outcome stands.
TOKEN_ERRORS = ("TaskTimedOut", "InvalidToken", "TaskDoesNotExist")
#: The shortest interval between two heartbeats of one token.
MIN_BEAT_SECONDS = 0.5
#: What ``beating`` gives a run without a task token (reusable).
_NOT_BEATING: AbstractContextManager[None] = nullcontext()
_METHODS = {
    "SendTaskSuccess": "send_task_success",
    "SendTaskFailure": "send_task_failure",
    "SendTaskHeartbeat": "send_task_heartbeat",
}


def output_of(value: Any) -> str | tuple[str, str]:
    """The ``SendTaskSuccess`` output of a JSON ``value``, or (error, cause) of the failure to
    send instead when it is over ``MAX_OUTPUT_BYTES``."""
    output = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    size = len(output.encode())
    if size <= MAX_OUTPUT_BYTES:
        return output
    cause = (
        f"the task's result is {size} bytes of JSON, over Step Functions' {MAX_OUTPUT_BYTES}-byte "
        "limit on a state's output: return a key (an S3 object, a row id) instead of the data"
    )
    return RESULT_TOO_LARGE_ERROR, cause


class TaskTokens:
    """Reports the runs of one executor to Step Functions. Thread-safe; the client is made on
    first use (``cloudq.core.aws``; ``AWS_ENDPOINT_URL`` points it at an emulator)."""

    def __init__(self, client: Any = None) -> None:
        self._client = client
        self._lock = threading.Condition()
        #: token → (interval, next beat (monotonic), task id)
        self._beating: dict[str, tuple[float, float, str]] = {}
        self._thread: threading.Thread | None = None

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = aws_client("stepfunctions", read_timeout=10, attempts=3)
            return self._client

    # -- the end of a run ----------------------------------------------------------------

    def succeeded(self, message: Message, value: Any) -> None:
        """``SendTaskSuccess`` with ``value`` (JSON) as the output, if ``message`` has a token."""
        token = message.task_token
        if token is None:
            return
        output = output_of(value)
        if isinstance(output, tuple):
            self.failed(message, *output)
            return
        self._call("SendTaskSuccess", message.id, taskToken=token, output=output)

    def failed(self, message: Message, error_type: str, text: str) -> None:
        """``SendTaskFailure`` (error: the exception type, cause: its message), if ``message``
        has a token."""
        if message.task_token is not None:
            self.token_failed(message.task_token, message.id, error_type, text)

    def token_failed(self, token: str, task_id: str, error_type: str, text: str) -> None:
        """``SendTaskFailure`` to ``token`` (also of a body that could not be read)."""
        error, cause = error_type[:MAX_ERROR_CHARS], text[:MAX_CAUSE_CHARS]
        self._call("SendTaskFailure", task_id, taskToken=token, error=error, cause=cause)

    def _call(self, operation: str, task_id: str, **parameters: str) -> None:
        """One call; when it fails, logged: the task's outcome stands."""
        try:
            getattr(self.client, _METHODS[operation])(**parameters)
        except aws_errors.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in TOKEN_ERRORS:
                logger.warning("task %s: %s not taken, the token is gone (%s)", task_id, operation, code)
            else:
                logger.warning("task %s: %s failed: %s", task_id, operation, exc)
        except aws_errors.BotoCoreError as exc:
            logger.warning("task %s: %s failed: %s", task_id, operation, exc)

    # -- heartbeats ----------------------------------------------------------------------

    def beating(self, message: Message) -> AbstractContextManager[None]:
        """``SendTaskHeartbeat`` for ``message``'s token every half of its
        ``heartbeat_seconds`` while the block runs (nothing without both: a shared no-op, as
        nearly every run has no token)."""
        token, seconds = message.task_token, message.heartbeat_seconds
        if token is None or seconds is None:
            return _NOT_BEATING
        return self._beating_for(message, token, seconds)

    @contextmanager
    def _beating_for(self, message: Message, token: str, seconds: float) -> Iterator[None]:
        interval = max(seconds / 2, MIN_BEAT_SECONDS)
        with self._lock:
            self._beating[token] = (interval, time.monotonic() + interval, message.id)
            self._ensure_thread()
            self._lock.notify_all()
        try:
            yield
        finally:
            with self._lock:
                self._beating.pop(token, None)

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._loop, name="cloudq-task-token-heartbeat", daemon=True
            )
            self._thread.start()

    def _loop(self) -> None:
        """Beat every token when it is due; sleep until the next one (or a new token)."""
        while True:
            with self._lock:
                due = self._due(time.monotonic())
                if not due:
                    upcoming = [at for _, at, _ in self._beating.values()]
                    self._lock.wait(timeout=min(upcoming) - time.monotonic() if upcoming else None)
                    continue
            for token, task_id in due:
                self._call("SendTaskHeartbeat", task_id, taskToken=token)

    def _due(self, now: float) -> list[tuple[str, str]]:
        """(token, task id) of the beats due at ``now``, their next beat set (under the lock)."""
        due = [(token, task_id) for token, (_, at, task_id) in self._beating.items() if at <= now]
        for token, task_id in due:
            interval = self._beating[token][0]
            self._beating[token] = (interval, now + interval, task_id)
        return due
