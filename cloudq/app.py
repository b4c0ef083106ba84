"""The app: settings, the task registry, routing, and sending."""

from __future__ import annotations

import datetime as dt
import importlib
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from pydantic import ValidationError

from cloudq.arguments import is_json
from cloudq.config import UNSET, Settings, SettingsSource, load_settings
from cloudq.errors import ArgumentError, ConfigurationError, TaskRegistrationError
from cloudq.hooks import Hooks
from cloudq.message import Message, new_task_id
from cloudq.task import RetryPolicy, Task
from cloudq.tracing import send_span
from cloudq.transports.base import OutgoingMessage, is_fifo

if TYPE_CHECKING:
    from cloudq.backends.base import ResultBackend
    from cloudq.result import AsyncResult
    from cloudq.transports.base import Transport

P = ParamSpec("P")
R = TypeVar("R")


def _epoch(value: dt.datetime | float | None) -> float | None:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ConfigurationError("eta/expires datetimes must be timezone-aware (use UTC)")
        return value.timestamp()
    return value


class CloudQ:
    """A cloudq application.

    ``CloudQ("shop")`` reads the rest from ``CLOUDQ_*`` variables or defaults: broker
    ``sqs://``, results in DynamoDB table ``shop-results``. Pass ``transport=`` or
    ``result_backend=`` to inject an engine (tests, custom clients), ``settings_source=`` to
    read settings from a framework's configuration (``cloudq.contrib.django``).
    """

    #: The class of the tasks ``@app.task`` registers (``cloudq.contrib.django`` adds methods).
    task_class: type[Task[Any, Any]] = Task

    def __init__(
        self,
        name: str,
        *,
        broker: str = UNSET,
        backend: str | None = UNSET,
        transport: Transport | None = None,
        result_backend: ResultBackend | None = None,
        settings_source: SettingsSource | None = None,
        **settings: Any,
    ) -> None:
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigurationError(f"app name {name!r} must be letters, digits, '-' or '_'")
        self.name = name
        unknown = set(settings) - set(Settings.model_fields)
        if unknown:
            raise ConfigurationError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        overrides = {"broker": broker, "backend": backend, **settings}
        self.settings = load_settings(name, overrides, source=settings_source)
        self.tasks: dict[str, Task[Any, Any]] = {}
        self._transport = transport
        self._backend = result_backend
        self._lock = threading.Lock()
        #: Task lifecycle hooks (``cloudq.hooks``): ``@app.hooks.before_task`` …
        self.hooks = Hooks()

    def __repr__(self) -> str:
        return f"<CloudQ {self.name} broker={self.settings.broker}>"

    # -- engines -------------------------------------------------------------------------

    @property
    def transport(self) -> Transport:
        """The broker engine, built on first use from ``settings.broker``."""
        if self._transport is None:
            with self._lock:
                if self._transport is None:
                    from cloudq.transports import transport_from_url

                    self._transport = transport_from_url(self.settings.broker, self.name, self.settings)
        return self._transport

    @property
    def backend(self) -> ResultBackend | None:
        """The result engine, or ``None`` when results are off (``backend=None``)."""
        if self._backend is None and self.settings.backend is not None:
            with self._lock:
                if self._backend is None:
                    from cloudq.backends import backend_from_url

                    self._backend = backend_from_url(self.settings.backend, self.name)
        return self._backend

    # -- names ---------------------------------------------------------------------------

    def physical_queue_name(self, queue: str) -> str:
        """``emails`` of app ``shop`` is SQS queue ``shop-emails``."""
        return f"{self.name}-{queue}"

    def result_table_name(self) -> str:
        backend = self.settings.backend or ""
        table = backend.removeprefix("dynamodb://").split("?")[0].strip("/")
        return table or f"{self.name}-results"

    def queue_names(self) -> set[str]:
        """Every logical queue a task of this app is routed to, and the default queue."""
        return {task.queue for task in self.tasks.values()} | {self.settings.default_queue}

    # -- registry ------------------------------------------------------------------------

    @overload
    def task(self, fn: Callable[P, R]) -> Task[P, R]: ...

    @overload
    def task(
        self,
        fn: None = None,
        *,
        name: str | None = None,
        queue: str | None = None,
        max_retries: int | None = None,
        retry_backoff: bool = True,
        retry_delay: float = 1.0,
        retry_backoff_max: float | None = None,
        retry_jitter: bool = True,
        autoretry_for: tuple[type[BaseException], ...] = (Exception,),
        timeout: float | None = None,
        bind: bool = False,
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(self, fn: Callable[..., Any] | None = None, **options: Any) -> Any:
        """Register a function as a task: ``@app.task`` or ``@app.task(queue="emails", …)``.

        ``bind=True`` passes the task as the first argument (for ``self.retry()`` and
        ``self.request``). The name defaults to ``module.function``, as in Celery.
        """
        if fn is not None:
            return self._register(fn, options)
        return lambda function: self._register(function, options)

    def _register(self, fn: Callable[..., Any], options: dict[str, Any]) -> Task[Any, Any]:
        name = options.pop("name", None) or f"{fn.__module__}.{fn.__qualname__}"
        if name in self.tasks and self.tasks[name].fn is not fn:
            raise TaskRegistrationError(f"task name {name!r} is registered twice")
        policy = RetryPolicy(
            max_retries=_pick(options.pop("max_retries", None), self.settings.max_retries),
            retry_backoff=options.pop("retry_backoff", True),
            retry_delay=options.pop("retry_delay", 1.0),
            retry_backoff_max=_pick(options.pop("retry_backoff_max", None), self.settings.retry_backoff_max),
            retry_jitter=options.pop("retry_jitter", True),
            autoretry_for=tuple(options.pop("autoretry_for", (Exception,))),
        )
        task: Task[Any, Any] = self.task_class(
            self,
            fn,
            name=name,
            queue=options.pop("queue", None) or self.settings.default_queue,
            policy=policy,
            timeout=options.pop("timeout", None),
            bind=options.pop("bind", False),
        )
        if options:
            raise TaskRegistrationError(f"unknown task option(s): {', '.join(sorted(options))}")
        self.tasks[name] = task
        return task

    # -- sending -------------------------------------------------------------------------

    def send_task(
        self,
        name: str,
        args: list[Any] | tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        countdown: float | None = None,
        eta: dt.datetime | float | None = None,
        expires: dt.datetime | float | None = None,
        queue: str | None = None,
        task_id: str | None = None,
        task: Task[Any, Any] | None = None,
    ) -> AsyncResult[Any]:
        """Send a task by name, from code that need not import it.

        Arguments must already be JSON (a registered task's ``.delay()`` converts them).
        Delays past the broker's limit (SQS: 15 minutes) are carried as an ``eta`` in the
        envelope: the message hops until then, never held in a worker's memory.
        """
        from cloudq.result import AsyncResult

        args, kwargs = list(args), dict(kwargs or {})
        if not is_json(args) or not is_json(kwargs):
            raise ArgumentError(f"send_task({name!r}): arguments must be JSON values; pass ids")
        now = time.time()
        run_at = _epoch(eta) if eta is not None else (now + countdown if countdown else None)
        try:
            message = Message(
                id=task_id or new_task_id(),
                task=name,
                args=args,
                kwargs=kwargs,
                eta=run_at,
                expires=_epoch(expires),
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ArgumentError(f"send_task({name!r}): {where}: {first['msg']}") from None
        target = (
            queue or (self.tasks[name].queue if name in self.tasks else None) or self.settings.default_queue
        )
        if run_at is not None and is_fifo(target):
            # SQS does not delay single messages of a FIFO queue, and re-sending one to wait
            # would break its order (and could be dropped by content deduplication).
            raise ArgumentError(
                f"queue {target!r} is a FIFO queue: SQS cannot delay one of its messages; "
                "send delayed tasks to a standard queue"
            )
        with send_span(name) as traceparent:
            traced = message if traceparent is None else message.traced(traceparent)
            self.send_message(traced, target, now=now)
        return AsyncResult(message.id, self, task=task)

    def encode(self, message: Message) -> str:
        """The body of ``message``: signed with the first signing key (if any), then encoded
        within the broker's size limit."""
        keys = self.settings.signing_keys
        if keys:
            message = message.model_copy(update={"signature": None}).signed(keys[0])
        return message.encode(min(self.settings.max_message_bytes, self.transport.max_message_bytes))

    def send_message(self, message: Message, queue: str, *, now: float | None = None) -> None:
        """Sign, encode and send one envelope, delayed until its ``eta`` (capped at the
        broker's longest delay; the executor re-sends it until the eta is reached)."""
        transport = self.transport
        body = self.encode(message)
        delay = 0
        if message.eta is not None:
            wait = message.eta - (time.time() if now is None else now)
            delay = int(min(max(wait, 0), transport.max_delay_seconds))
        transport.send(queue, [OutgoingMessage(body=body, delay_seconds=delay, group_id=_group(queue))])

    def lambda_handler(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        """Lambda entry point for an SQS trigger (``ReportBatchItemFailures``)."""
        from cloudq.aws_lambda import handle_sqs_event

        return handle_sqs_event(self, event, context)

    def AsyncResult(self, task_id: str) -> AsyncResult[Any]:  # noqa: N802 - Celery's name
        """A handle on a result by id."""
        from cloudq.result import AsyncResult

        return AsyncResult(task_id, self)


def _import_failure(module_name: str, exc: Exception) -> str:
    if isinstance(exc, ImportError):
        return f"cannot import module {module_name!r}: {exc}"
    text = f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}"
    if type(exc).__name__ in ("ImproperlyConfigured", "AppRegistryNotReady"):
        settings = os.environ.get("DJANGO_SETTINGS_MODULE")
        text += (
            f" (Django: check the settings module {settings!r})"
            if settings
            else " (Django: set DJANGO_SETTINGS_MODULE, e.g. mysite.settings, and cloudq sets Django up)"
        )
    return text


def _group(queue: str) -> str | None:
    # FIFO queues need a message group; one group per queue keeps strict order by default.
    return "default" if is_fifo(queue) else None


def _pick(value: Any, default: Any) -> Any:
    return default if value is None else value


def load_app(reference: str) -> CloudQ:
    """Import ``module:attribute`` (``shop.tasks:app``); the current directory is importable.

    With ``DJANGO_SETTINGS_MODULE`` set, Django is set up first and each installed app's
    ``tasks`` module imported (``cloudq.contrib.django.setup``). Whatever importing raises is
    one ``ConfigurationError`` naming the module and the error.
    """
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"app reference {reference!r} must look like 'module:app'")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        if os.environ.get("DJANGO_SETTINGS_MODULE"):
            from cloudq.contrib.django import setup

            setup()
        module = importlib.import_module(module_name)
    except ConfigurationError:
        raise
    except Exception as exc:  # any error of the user's module: one line, not a traceback
        raise ConfigurationError(_import_failure(module_name, exc)) from None
    app = getattr(module, attribute, None)
    if not isinstance(app, CloudQ):
        raise ConfigurationError(f"{reference!r} is not a cloudq app (CloudQ instance)")
    return app
