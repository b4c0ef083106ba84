"""Task lifecycle hooks: functions an app calls around each task run, on the worker and in the
Lambda handler alike (both go through the one executor, ``cloudq.runtime.executor``).

::

    @app.hooks.before_task                 # the task is about to run (claimed, arguments decoded)
    def start_timer(event: TaskEvent) -> None: ...

    @app.hooks.after_task                  # it returned or raised (every run, after before_task)
    def stop_timer(event: TaskEvent) -> None: ...   # event.exception is None on success

    @app.hooks.on_retry                    # a failed attempt will be retried in event.retry_delay s
    @app.hooks.on_failure                  # final failure: FAILURE recorded, message to the DLQ

- ``before_task`` and ``after_task`` run on the task's own thread, with its ``Request`` current
  (``task.request`` works), so they suit per-thread resources (database connections, log
  context). ``after_task`` runs for every run that ``before_task`` announced.
- ``on_failure`` also covers failures without a run: arguments that do not fit, an expired
  task, attempts used up by crashes. ``event.error_type`` and ``event.error_message`` say why.
  In ``on_retry`` and ``on_failure`` events, ``request.args``/``kwargs`` are the message's
  JSON arguments (they may not have been decoded).
- A hook that raises is logged and skipped: it never changes a task's outcome nor stops a worker.
- Hooks run in the order connected; ``disconnect(fn)`` removes one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from cloudq.core.request import Request, run_with_request

if TYPE_CHECKING:
    from cloudq.app.task import Task
    from cloudq.core.message import Message

logger = logging.getLogger("cloudq.hooks")  # its name before the move


@dataclass(frozen=True)
class TaskEvent:
    """What a hook is told. Fields after ``request`` are set by the hooks they belong to."""

    task: Task[Any, Any]
    #: The invocation: id, attempt (1-based), decoded arguments, queue.
    request: Request
    #: ``after_task``: the exception the run raised, ``None`` when it returned.
    exception: BaseException | None = None
    #: ``after_task``: the value the run returned.
    result: Any = None
    #: ``on_retry``: seconds until the next attempt.
    retry_delay: float | None = None
    #: ``on_retry`` and ``on_failure``: the error recorded.
    error_type: str | None = None
    error_message: str | None = None


HookFunction = Callable[[TaskEvent], object]


class Hook:
    """One lifecycle point: a list of functions. Use an instance as a decorator to connect."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._functions: tuple[HookFunction, ...] = ()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Hook {self.name}: {len(self._functions)} function(s)>"

    def __call__(self, fn: HookFunction) -> HookFunction:
        """``@app.hooks.before_task`` connects ``fn`` and returns it unchanged."""
        return self.connect(fn)

    def connect(self, fn: HookFunction) -> HookFunction:
        with self._lock:
            if fn not in self._functions:
                self._functions = (*self._functions, fn)
        return fn

    def disconnect(self, fn: HookFunction) -> None:
        with self._lock:
            self._functions = tuple(f for f in self._functions if f != fn)

    @property
    def functions(self) -> tuple[HookFunction, ...]:
        return self._functions

    def send(self, event: TaskEvent) -> None:
        """Call every function; one that raises is logged and the others still run."""
        for fn in self._functions:
            try:
                fn(event)
            except Exception:
                logger.exception("%s hook %r failed for task %s", self.name, fn, event.request.id)


class Hooks:
    """The four lifecycle points of one app (``app.hooks``)."""

    def __init__(self) -> None:
        self.before_task = Hook("before_task")
        self.after_task = Hook("after_task")
        self.on_retry = Hook("on_retry")
        self.on_failure = Hook("on_failure")

    def run(self, task: Task[Any, Any], request: Request) -> Any:
        """Run ``task`` for ``request`` between ``before_task`` and ``after_task``, with the
        request current on this thread. The task's own exception propagates."""
        if not (self.before_task.functions or self.after_task.functions):  # no event to build
            return run_with_request(request, task, *request.args, **request.kwargs)
        return run_with_request(request, self._run, TaskEvent(task, request))

    def _run(self, event: TaskEvent) -> Any:
        self.before_task.send(event)
        try:
            value = event.task(*event.request.args, **event.request.kwargs)
        except BaseException as exc:
            if self.after_task.functions:
                self.after_task.send(replace(event, exception=exc))
            raise
        if self.after_task.functions:
            self.after_task.send(replace(event, result=value))
        return value

    def retrying(
        self, task: Task[Any, Any], message: Message, attempt: int, delay: float, error: tuple[str, str]
    ) -> None:
        """Tell ``on_retry``: attempt ``attempt`` failed with ``error`` (type, message)."""
        event = TaskEvent(task, _request(task, message, attempt), retry_delay=delay)
        self.on_retry.send(replace(event, error_type=error[0], error_message=error[1]))

    def failed(self, task: Task[Any, Any], message: Message, attempt: int, error: tuple[str, str]) -> None:
        """Tell ``on_failure``: the task failed for good with ``error`` (type, message)."""
        event = TaskEvent(task, _request(task, message, attempt))
        self.on_failure.send(replace(event, error_type=error[0], error_message=error[1]))


def _request(task: Task[Any, Any], message: Message, attempt: int) -> Request:
    return Request(
        id=message.id,
        task=task.name,
        attempt=attempt,
        args=tuple(message.args),
        kwargs=dict(message.kwargs),
        parent_id=message.parent_id,
        root_id=message.root_id,
    )
