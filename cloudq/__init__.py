"""cloudq: a Celery-style task queue on AWS serverless primitives.

``import cloudq`` loads boto3 and pydantic only; engines, the CLI and the emulator are
imported when used. So are the canvas (``chain``, ``group``, ``chord``, ``Signature``) and
the result handles (``AsyncResult``, ``GroupResult``): a worker or a Lambda function that
only runs tasks never needs them (issue 14, cold start).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cloudq.app import CloudQ
from cloudq.backends.base import ResultRecord, State
from cloudq.distribution import VERSION
from cloudq.errors import (
    ArgumentError,
    BackendError,
    CloudQError,
    ConfigurationError,
    MessageTooLargeError,
    PartialSendError,
    QueueNotFoundError,
    Retry,
    TaskError,
    TaskRevokedError,
    TransportError,
)
from cloudq.hooks import Hook, Hooks, TaskEvent
from cloudq.loading import load_app
from cloudq.message import Message
from cloudq.request import Request
from cloudq.retry import RetryPolicy
from cloudq.task import Task

if TYPE_CHECKING:
    from cloudq.canvas import Signature, chain, chord, group
    from cloudq.result import AsyncResult, GroupResult

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
    "RetryPolicy",
    "State",
    "Task",
    "TaskError",
    "TaskRevokedError",
    "TaskEvent",
    "TransportError",
    "chain",
    "chord",
    "group",
    "load_app",
]

#: Public names imported on first use, and their modules.
_LAZY = {
    "AsyncResult": "cloudq.result",
    "GroupResult": "cloudq.result",
    "Signature": "cloudq.canvas",
    "chain": "cloudq.canvas",
    "chord": "cloudq.canvas",
    "group": "cloudq.canvas",
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
