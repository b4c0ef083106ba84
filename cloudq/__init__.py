"""cloudq: a Celery-style task queue on AWS serverless primitives.

``import cloudq`` loads boto3 and pydantic only; engines, the CLI and the emulator are
imported when used. So are the canvas (``chain``, ``group``, ``chord``, ``Signature``) and
the result handles (``AsyncResult``, ``GroupResult``): a worker or a Lambda function that
only runs tasks never needs them (issue 14, cold start).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cloudq.app.base import CloudQ
from cloudq.app.hooks import Hook, Hooks, TaskEvent
from cloudq.app.loading import load_app
from cloudq.app.shared import shared_task
from cloudq.app.task import Task
from cloudq.backends.base import ResultRecord, State
from cloudq.core.distribution import VERSION
from cloudq.core.errors import (
    ArgumentError,
    BackendError,
    CloudQError,
    ConfigurationError,
    MessageTooLargeError,
    PartialSendError,
    QueueNotFoundError,
    Retry,
    ScheduleExistsError,
    SoftTimeLimitExceeded,
    TaskError,
    TaskRevokedError,
    TransportError,
)
from cloudq.core.message import Message
from cloudq.core.request import Request
from cloudq.core.retry import RetryPolicy
from cloudq.core.schedules import at

if TYPE_CHECKING:
    from cloudq.app.canvas import Signature, chain, chord, group
    from cloudq.app.result import AsyncResult, GroupResult

__version__ = VERSION

__all__ = [
    "ArgumentError",
    "AsyncResult",
    "BackendError",
    "CloudQ",
    "CloudQError",
    "ConfigurationError",
    "GroupResult",
    "Hook",
    "Hooks",
    "Message",
    "MessageTooLargeError",
    "PartialSendError",
    "QueueNotFoundError",
    "Request",
    "ResultRecord",
    "Retry",
    "Signature",
    "SoftTimeLimitExceeded",
    "RetryPolicy",
    "ScheduleExistsError",
    "State",
    "Task",
    "TaskError",
    "TaskRevokedError",
    "TaskEvent",
    "TransportError",
    "at",
    "chain",
    "chord",
    "group",
    "load_app",
    "shared_task",
]

#: Public names imported on first use, and their modules.
_LAZY = {
    "AsyncResult": "cloudq.app.result",
    "GroupResult": "cloudq.app.result",
    "Signature": "cloudq.app.canvas",
    "chain": "cloudq.app.canvas",
    "chord": "cloudq.app.canvas",
    "group": "cloudq.app.canvas",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
