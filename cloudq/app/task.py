"""The task: a function registered with an app, callable locally or sent with ``.delay()``."""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Generic, NoReturn, ParamSpec, TypeVar

from cloudq.core.arguments import Arguments
from cloudq.core.errors import ConfigurationError, Retry
from cloudq.core.flow import FlowOptions
from cloudq.core.request import Request, current_request
from cloudq.core.retry import RetryPolicy

if TYPE_CHECKING:
    from cloudq.app.base import CloudQ
    from cloudq.app.canvas import Signature
    from cloudq.app.result import AsyncResult

#: ``set_progress`` writes at most once this often per run (one backend write each).
PROGRESS_INTERVAL_SECONDS = 1.0
#: The run (task id, attempt) that last wrote progress on this thread, and when (monotonic):
#: one entry per thread, so nothing accumulates across runs.
_last_progress: contextvars.ContextVar[tuple[tuple[str, int], float] | None] = contextvars.ContextVar(
    "cloudq_last_progress", default=None
)

P = ParamSpec("P")
R = TypeVar("R")


def default_task_name(fn: Callable[..., Any]) -> str:
    """A task's name when none is given: ``module.function``, as in Celery."""
    return f"{fn.__module__}.{fn.__qualname__}"


class Task(Generic[P, R]):
    """A registered task. ``task(...)`` runs it here; ``task.delay(...)`` sends it."""

    def __init__(
        self,
        app: CloudQ,
        fn: Callable[..., R],
        *,
        name: str,
        queue: str,
        policy: RetryPolicy,
        timeout: float | None,
        bind: bool,
        ignore_result: bool = False,
        deduplicate: bool = True,
    ) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        self.queue = queue
        self.policy = policy
        self.timeout = timeout
        self.bind = bind
        #: Cost options (issue 14): no SUCCESS record (errors are still recorded), and no
        #: claim (at-least-once: a redelivered message runs again). See docs/concepts/delivery.md.
        self.ignore_result = ignore_result
        self.deduplicate = deduplicate
        self.arguments = Arguments(fn, skip_first=bind)
        #: Rate limit and concurrency cap (``cloudq.core.flow``), set by ``@app.task``.
        self.flow = FlowOptions()
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.queue}>"

    @property
    def max_retries(self) -> int:
        return self.policy.max_retries

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here, now (no queue, no result record)."""
        if self.bind:
            return self.fn(self, *args, **kwargs)
        return self.fn(*args, **kwargs)

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """Send with default options. Arguments are validated here, in the caller."""
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        countdown: float | None = None,
        eta: dt.datetime | float | None = None,
        expires: dt.datetime | float | None = None,
        queue: str | None = None,
        task_id: str | None = None,
        message_group_id: str | None = None,
        deduplication_id: str | None = None,
        protocol: str | None = None,
        priority: str | int | None = None,
    ) -> AsyncResult[R]:
        """Send with options: a delay (``countdown`` seconds or an ``eta``), an expiry, another
        queue, a chosen task id (the idempotency key), SQS's ``message_group_id`` (FIFO: order
        within the group, groups in parallel; standard: fair-queue tenant),
        ``deduplication_id`` (FIFO), a ``priority`` lane (``"high"``, ``"default"``, or
        Celery's integer: ``cloudq.core.flow.check_priority``) and ``protocol``
        (``CloudQ.send_task``). They make one ``cloudq.options.SendOptions``, checked
        before anything is sent."""
        from cloudq.options import SendOptions  # sending only: not at import (issue 14)

        options = SendOptions(
            countdown=countdown,
            eta=eta,
            expires=expires,
            queue=queue or self.queue,
            task_id=task_id,
            message_group_id=message_group_id,
            deduplication_id=deduplication_id,
            protocol=protocol,
            priority=priority,
        )
        json_args, json_kwargs = self.arguments.encode(tuple(args), dict(kwargs or {}))
        result: AsyncResult[R] = self.app.send_task(
            self.name, json_args, json_kwargs, task=self, options=options
        )
        return result

    def s(self, *args: Any, **kwargs: Any) -> Signature[R]:
        """A call to send later (``chain``, ``group``, ``chord``); in a chain or as a chord
        callback it gets the previous result as its first argument. Checked now."""
        from cloudq.app.canvas import Signature

        return Signature(self, args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature[R]:
        """An immutable ``s()``: sent with exactly these arguments (fully checked now)."""
        from cloudq.app.canvas import Signature

        return Signature(self, args, kwargs, immutable=True)

    def map(self, items: Iterable[Any], **options: Any) -> list[AsyncResult[R]]:
        """Send one call per item, in batches (SQS: 10 per call): a tuple item is the
        positional arguments of its call, any other value its single argument. Every call is
        checked before anything is sent; ``options`` as ``apply_async``. See
        ``CloudQ.send_many`` for a partial failure."""
        from cloudq.app.canvas import require_all
        from cloudq.options import SendOptions

        send = SendOptions.of(options)
        send = replace(send, queue=send.queue or self.queue)
        outs = []
        for item in items:
            args, kwargs = self.arguments.encode(item if isinstance(item, tuple) else (item,), {})
            outs.append(self.app.sender.outgoing(self.name, args, kwargs, send))
        return require_all(self.app, outs, [self] * len(outs))

    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """``delay`` for asyncio code: ``await task.adelay(...)`` never blocks the event loop."""
        return await self.aapply_async(args, kwargs)

    async def aapply_async(
        self,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult[R]:
        """``apply_async`` for asyncio code (same options): the send runs on a thread of
        ``cloudq.app.aio``'s pool while the event loop goes on."""
        from cloudq.app.aio import run_in_thread

        return await run_in_thread(functools.partial(self.apply_async, args, kwargs, **options))

    @property
    def request(self) -> Request:
        """The invocation being run on this thread (only inside the task)."""
        request = current_request()
        if request is None:
            raise ConfigurationError(f"{self.name}.request is only available while the task runs")
        return request

    def set_progress(self, done: float, total: float | None = None, message: str | None = None) -> bool:
        """Report how far this run is (``bind=True`` tasks): the record turns PROGRESS and
        keeps the run's claim; ``AsyncResult.progress`` reads it. At most one write per
        ``PROGRESS_INTERVAL_SECONDS`` per run: a report sooner than that after the last one
        written is dropped (``True``: the next one supersedes it). ``False`` when the write did
        not land (the claim is lost: its lease ran out, or another run holds it)."""
        from cloudq.backends.base import Progress  # a running task only: not at import

        request = self.request
        backend = self.app.backend
        if backend is None or request.owner is None:
            needs = "a run that claims its task id (a result backend, deduplicate=True)"
            raise ConfigurationError(f"{self.name}.set_progress needs {needs}")
        report = _progress(done, total, message)
        now, run = self.app.clock.monotonic(), (request.id, request.attempt)
        last = _last_progress.get()
        if last is not None and last[0] == run and now - last[1] < PROGRESS_INTERVAL_SECONDS:
            return True
        _last_progress.set((run, now))
        return backend.put_progress(request.id, request.owner, Progress(**report), self.app.clock.time())

    def retry(self, countdown: float | None = None, exc: BaseException | None = None) -> NoReturn:
        """Ask for another attempt (``bind=True`` tasks): ``raise self.retry(countdown=10)``.

        Without ``countdown`` the task's backoff decides. Past ``max_retries`` the task fails
        with ``exc`` (or a ``Retry`` error) and its message goes to the dead-letter queue.
        """
        raise Retry(countdown=countdown, exc=exc)


def _progress(done: Any, total: Any, message: Any) -> dict[str, Any]:
    """A progress report checked as JSON: finite numbers and a string (a clear error, not a
    record the producer cannot read)."""
    for name, value in (("done", done), ("total", total)):
        if value is None and name == "total":
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"set_progress: {name} must be a finite number, not {value!r}")
    if message is not None and not isinstance(message, str):
        raise ValueError(f"set_progress: message must be a string, not {type(message).__name__}")
    return {"done": done, "total": total, "message": message}
