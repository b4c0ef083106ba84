"""The task: a function registered with an app, callable locally or sent with ``.delay()``."""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, NoReturn, ParamSpec, TypeVar

from cloudq.arguments import Arguments
from cloudq.errors import ConfigurationError, Retry

if TYPE_CHECKING:
    from cloudq.app import CloudQ
    from cloudq.result import AsyncResult

P = ParamSpec("P")
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


_current_request: contextvars.ContextVar[Request | None] = contextvars.ContextVar(
    "cloudq_request", default=None
)


@dataclass(frozen=True)
class RetryPolicy:
    """How a task is retried. One policy object; the executor is its only reader."""

    max_retries: int = 3
    #: ``True``: exponential backoff from ``retry_delay``; ``False``: a constant ``retry_delay``.
    retry_backoff: bool = True
    retry_delay: float = 1.0
    retry_backoff_max: float = 600.0
    retry_jitter: bool = True
    #: Exceptions retried automatically. Others fail at once (FAILURE, then the DLQ).
    autoretry_for: tuple[type[BaseException], ...] = (Exception,)

    def delay_for(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        delay = self.retry_delay * (2 ** (attempt - 1) if self.retry_backoff else 1)
        delay = min(delay, self.retry_backoff_max)
        if self.retry_jitter:
            # "Equal jitter": spread retries of a burst of failures over [delay/2, delay].
            delay = (rng or random).uniform(delay / 2, delay)
        return delay

    def retries(self, exc: BaseException) -> bool:
        return isinstance(exc, self.autoretry_for)


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
    ) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        self.queue = queue
        self.policy = policy
        self.timeout = timeout
        self.bind = bind
        self.arguments = Arguments(fn, skip_first=bind)
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
    ) -> AsyncResult[R]:
        """Send with options: a delay (``countdown`` seconds or an ``eta``), an expiry, another
        queue, or a chosen task id (the idempotency key)."""
        json_args, json_kwargs = self.arguments.encode(tuple(args), dict(kwargs or {}))
        result: AsyncResult[R] = self.app.send_task(
            self.name,
            json_args,
            json_kwargs,
            countdown=countdown,
            eta=eta,
            expires=expires,
            queue=queue or self.queue,
            task_id=task_id,
            task=self,
        )
        return result

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
        ``cloudq.aio``'s pool while the event loop goes on."""
        from cloudq.aio import run_in_thread

        return await run_in_thread(functools.partial(self.apply_async, args, kwargs, **options))

    @property
    def request(self) -> Request:
        """The invocation being run on this thread (only inside the task)."""
        request = _current_request.get()
        if request is None:
            raise ConfigurationError(f"{self.name}.request is only available while the task runs")
        return request

    def retry(self, countdown: float | None = None, exc: BaseException | None = None) -> NoReturn:
        """Ask for another attempt (``bind=True`` tasks): ``raise self.retry(countdown=10)``.

        Without ``countdown`` the task's backoff decides. Past ``max_retries`` the task fails
        with ``exc`` (or a ``Retry`` error) and its message goes to the dead-letter queue.
        """
        raise Retry(countdown=countdown, exc=exc)


def run_with_request(request: Request, fn: Callable[[], R]) -> R:
    """Run ``fn`` with ``request`` as the current request of this thread."""
    token = _current_request.set(request)
    try:
        return fn()
    finally:
        _current_request.reset(token)


def current_request() -> Request | None:
    """The invocation running on this thread, or ``None`` outside a task."""
    return _current_request.get()
