"""Every exception cloudq raises.

::

    CloudQError
    ├── ConfigurationError          a setting or URL is wrong; fix the argument / CLOUDQ_* variable
    │   ├── MissingExtraError       an optional dependency is not installed; the message names the extra
    │   └── ScheduleExistsError     a run-time schedule of that name exists (``app.schedules.create``)
    ├── TaskRegistrationError       two tasks share a name, or a task name is unknown locally
    ├── ArgumentError (TypeError)   .delay() arguments do not fit the task's signature or are not JSON
    ├── MessageError                an envelope cannot be built or read
    │   ├── MessageTooLargeError    the encoded message is over the broker's size limit
    │   ├── DecodeError             a received body is not a cloudq envelope
    │   ├── SignatureError          a message is unsigned, its signature or its payload's hash does not verify
    │   └── PayloadMissingError     a message's or result's payload object is gone (deleted or expired)
    ├── TransportError              the broker failed (network, throttling, credentials)
    │   ├── QueueNotFoundError      the queue does not exist; the message names the command that creates it
    │   ├── CredentialsError        no usable AWS credentials
    │   └── PartialSendError        some messages of a batch were not sent; says which, holds the sent ones
    ├── PayloadStoreError           the payload store (S3, Redis) failed; transient
    ├── BackendError                the result backend failed
    │   └── ResultTooLargeError     a result is larger than the backend stores (not retried)
    ├── TaskError                   a task failed remotely; carries the remote type, message and traceback
    │   └── TaskRevokedError        the task was revoked before it ran
    ├── SoftTimeLimitExceeded       raised inside a task past its ``soft_timeout`` (retry policy applies)
    └── Retry                       raised by ``self.retry()`` inside a task (control flow, not a failure)

``TimeoutError`` (the builtin) is raised by ``AsyncResult.get`` when the result is not ready in time.
Engines map vendor errors (botocore ``ClientError``, redis ``ConnectionError``) to these at one
boundary with ``raise ... from exc``; a vendor exception never reaches a caller.
"""

from __future__ import annotations

from typing import Any


class CloudQError(Exception):
    """Base of every cloudq exception."""


class ConfigurationError(CloudQError):
    """A setting, URL or app reference is wrong."""


class MissingExtraError(ConfigurationError, ImportError):
    """An optional dependency is missing; the message says which extra to install."""

    def __init__(self, module: str, extra: str) -> None:
        from cloudq.core.distribution import DISTRIBUTION

        super().__init__(
            f"{module!r} is not installed; install it with: pip install '{DISTRIBUTION}[{extra}]'"
        )


class ScheduleExistsError(ConfigurationError):
    """A run-time schedule of that name exists already: delete it first, or pick another name."""


class TaskRegistrationError(CloudQError):
    """A task name is registered twice, or is unknown to this app."""


class ArgumentError(CloudQError, TypeError):
    """Arguments given to ``.delay()`` do not fit the task, or cannot travel as JSON."""


class MessageError(CloudQError):
    """An envelope cannot be built or read."""


class MessageTooLargeError(MessageError):
    """The encoded message is larger than the broker accepts."""


class DecodeError(MessageError):
    """A received body is not a cloudq envelope."""


class SignatureError(MessageError):
    """A message is unsigned, or its signature does not verify with any configured key."""


class PayloadMissingError(MessageError):
    """A pointer's object is not in the payload store (deleted, or expired by its lifecycle
    rule). Deterministic: reading it again would fail again."""


class PayloadStoreError(CloudQError):
    """The payload store could not be reached or refused the call."""


class TransportError(CloudQError):
    """The broker could not be reached or refused the call."""


class QueueNotFoundError(TransportError):
    """A queue does not exist. Runtime code never creates queues: provisioning does."""

    def __init__(self, queue: str, where: str = "") -> None:
        place = f" ({where}: check the region and endpoint)" if where else ""
        super().__init__(
            f"queue {queue!r} does not exist{place}; create it with 'cloudq emulator up --app "
            "MODULE:APP' locally, or in your AWS account with its dead-letter queue"
        )
        self.queue = queue


class CredentialsError(TransportError):
    """No usable AWS credentials were found."""


class PartialSendError(TransportError):
    """Some messages of a batch were not sent (the others were): ``failed`` lists each one
    not sent as (its position in the batch, the reason); ``sent`` holds the handles of those
    sent. Sending the failed ones again is safe: their task ids are the idempotency keys."""

    def __init__(self, sent: list[Any], failed: list[tuple[int, str]], total: int) -> None:
        first = failed[0]
        super().__init__(
            f"{len(failed)} of {total} task(s) not sent (first: #{first[0]}: {first[1]}); "
            "the others were sent"
        )
        self.sent = sent
        self.failed = failed


class BackendError(CloudQError):
    """The result backend could not be reached or refused the call."""


class ResultTooLargeError(BackendError):
    """A result record is larger than the backend can store. Deterministic: storing it again
    would fail again, so the executor records a failure instead of retrying."""


class TaskError(CloudQError):
    """A task failed on a worker. Carries the remote error's type, message and traceback."""

    def __init__(self, task_id: str, error_type: str, message: str, traceback: str = "") -> None:
        super().__init__(f"task {task_id} failed: {error_type}: {message}")
        self.task_id = task_id
        self.error_type = error_type
        self.error_message = message
        self.traceback = traceback


class TaskRevokedError(TaskError):
    """The task was revoked (``AsyncResult.revoke()``, ``cloudq revoke``) before it ran."""


class SoftTimeLimitExceeded(CloudQError):  # noqa: N818 - Celery's name
    """Raised inside a running task when its ``soft_timeout`` has passed (or, on Lambda, a
    margin before the invocation ends), so it can clean up. Unhandled, it is the task's
    failure like any other exception: the retry policy (``autoretry_for``) decides."""

    def __init__(self, message: str = "the task ran past its soft_timeout") -> None:
        # Raised into the task's thread as a class: built with no argument.
        super().__init__(message)


class Retry(CloudQError):  # noqa: N818 - Celery's name; control flow, not an error
    """Raised by ``task.retry()`` to ask the executor for another attempt."""

    def __init__(self, countdown: float | None = None, exc: BaseException | None = None) -> None:
        super().__init__(f"retry requested (countdown={countdown})")
        self.countdown = countdown
        self.exc = exc
