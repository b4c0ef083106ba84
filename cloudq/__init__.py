"""cloudq: a Celery-style task queue on AWS serverless primitives.

``import cloudq`` loads boto3 and pydantic only; engines, the CLI and the emulator are
imported when used.
"""

from cloudq.app import CloudQ, load_app
from cloudq.backends.base import ResultRecord, State
from cloudq.canvas import Signature, chain, chord, group
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
from cloudq.message import Message
from cloudq.result import AsyncResult, GroupResult
from cloudq.retry import RetryPolicy
from cloudq.task import Request, Task

__version__ = "0.1.0"

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
