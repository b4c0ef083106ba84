"""The invocation a task is running for: ``Request``, and the one current on this thread.

Below the task and the tracing on purpose: the executor sets it (``run_with_request``), the
task (``Task.request``), the log records and the trace context read it (``current_request``).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cloudq.core.clock import SYSTEM_CLOCK, Clock

R = TypeVar("R")


@dataclass(frozen=True)
class Request:
    """What a running task knows about its own invocation (``self.request`` with ``bind=True``)."""

    id: str
    task: str
    #: 1 for the first run, 2 for the first retry, …
    attempt: int
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str = ""
    parent_id: str | None = None
    root_id: str | None = None
    #: The W3C trace context of this run (``cloudq.tracing``), when the message carried one.
    traceparent: str | None = None
    #: Who holds this run's claim on its task id (the worker), or ``None`` for a run that
    #: claims nothing (no backend, ``deduplicate=False``): ``set_progress`` writes under it.
    owner: str | None = None
    #: When this run should be done (epoch seconds on the app's clock): its ``soft_timeout``
    #: after it started, and on Lambda no later than a margin before the invocation ends.
    #: ``None`` when neither bounds it.
    deadline: float | None = None
    #: The app's clock, which ``remaining`` reads (a ``ManualClock`` in tests).
    clock: Clock = field(default=SYSTEM_CLOCK, repr=False, compare=False)

    @property
    def retries(self) -> int:
        """Runs before this one (Celery's ``request.retries``): ``attempt - 1``."""
        return self.attempt - 1

    def remaining(self) -> float | None:
        """Seconds left before ``deadline`` (never below 0), or ``None`` without one."""
        return None if self.deadline is None else max(0.0, self.deadline - self.clock.time())


_current_request: contextvars.ContextVar[Request | None] = contextvars.ContextVar(
    "cloudq_request", default=None
)


def run_with_request(request: Request, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
    """``fn(*args, **kwargs)`` with ``request`` as the current request of this thread."""
    token = _current_request.set(request)
    try:
        return fn(*args, **kwargs)
    finally:
        _current_request.reset(token)


def current_request() -> Request | None:
    """The invocation running on this thread, or ``None`` outside a task."""
    return _current_request.get()
