"""cloudq: a Celery-style task queue on AWS serverless primitives.

``import cloudq`` loads boto3 and pydantic only; engines, the CLI and the emulator are
imported when used.
"""

from cloudq.app import CloudQ, load_app
from cloudq.backends.base import ResultRecord, State
from cloudq.errors import (
    ArgumentError,
    BackendError,
    CloudQError,
    ConfigurationError,
    MessageTooLargeError,
    QueueNotFoundError,
    Retry,
    TaskError,
    TransportError,
)
from cloudq.hooks import Hook, Hooks, TaskEvent
from cloudq.message import Message
from cloudq.result import AsyncResult
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
    "Hook",
    "Hooks",
    "Message",
    "MessageTooLargeError",
    "QueueNotFoundError",
    "Request",
    "ResultRecord",
    "Retry",
    "RetryPolicy",
    "State",
    "Task",
    "TaskError",
    "TaskEvent",
    "TransportError",
    "load_app",
]
