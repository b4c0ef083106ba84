"""The app: settings, engines, the task registry and periodic tasks; sending is
``cloudq.app.sending``'s, behind the same methods."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from cloudq.app import shared
from cloudq.app.hooks import Hooks
from cloudq.app.schedules import Schedules
from cloudq.app.sending import Outgoing, Sender, SendKeywords
from cloudq.app.task import Task, default_task_name
from cloudq.backends.base import ttl_from
from cloudq.core.celery_options import task_options
from cloudq.core.clock import SYSTEM_CLOCK, Clock
from cloudq.core.config import UNSET, Settings, SettingsSource, load_settings
from cloudq.core.errors import ArgumentError, ConfigurationError, TaskRegistrationError
from cloudq.core.flow import FlowOptions
from cloudq.core.message import Message
from cloudq.core.naming import HIGH_LANE, lane_queue_name, physical_queue_name, results_table_name
from cloudq.core.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from cloudq.transports.base import SendResult, require_sent

if TYPE_CHECKING:
    from cloudq.app.canvas import Signature
    from cloudq.app.result import AsyncResult
    from cloudq.backends.base import ResultBackend
    from cloudq.core.codec import Codec
    from cloudq.core.schedules import PeriodicTask
    from cloudq.options import SendOptions
    from cloudq.payloads.base import PayloadStore
    from cloudq.transports.base import Transport

P = ParamSpec("P")
R = TypeVar("R")


class CloudQ:
    """A cloudq application.

    ``CloudQ("shop")`` reads the rest from ``CLOUDQ_*`` variables or defaults: broker
    ``sqs://``, results in DynamoDB table ``shop-results``. Pass ``transport=``,
    ``result_backend=`` or ``payloads=`` (a ``PayloadStore``) to inject an engine (tests,
    custom clients), ``settings_source=`` to read settings from a framework's configuration
    (``cloudq.contrib.django``), ``clock=`` (``cloudq.core.clock``) for the time everything of this
    app reads (sending, the executor, results, beat, the memory engines it builds).
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
        payloads: PayloadStore | None = None,
        settings_source: SettingsSource | None = None,
        clock: Clock = SYSTEM_CLOCK,
        **settings: Any,
    ) -> None:
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigurationError(f"app name {name!r} must be letters, digits, '-' or '_'")
        self.name = name
        #: The time this app's parts read (``cloudq.core.clock``); a test gives a ``ManualClock``.
        self.clock = clock
        unknown = set(settings) - set(Settings.model_fields)
        if unknown:
            raise ConfigurationError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        overrides = {"broker": broker, "backend": backend, **settings}
        self.settings = load_settings(name, overrides, source=settings_source)
        self.tasks: dict[str, Task[Any, Any]] = {}
        #: Periodic tasks by name (``@app.periodic``, ``app.add_periodic``).
        self.periodic_tasks: dict[str, PeriodicTask] = {}
        self._transport = transport
        self._backend = result_backend
        self._payload_store = payloads
        self._codec: Codec | None = None
        self._lock = threading.Lock()
        #: Task lifecycle hooks (``cloudq.app.hooks``): ``@app.hooks.before_task`` …
        self.hooks = Hooks()
        #: What sends this app's task calls (``cloudq.app.sending``).
        self.sender = Sender(self)
        #: Schedules made at run time (``cloudq.app.schedules``): ``app.schedules.create`` …
        self.schedules = Schedules(self)
        shared.app_created(self)  # the current app, with every shared task (``shared_task``)

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

                    self._transport = transport_from_url(
                        self.settings.broker, self.name, self.settings, clock=self.clock
                    )
        return self._transport

    @property
    def backend(self) -> ResultBackend | None:
        """The result engine, or ``None`` when results are off (``backend=None``)."""
        if self._backend is None and self.settings.backend is not None:
            with self._lock:
                if self._backend is None:
                    from cloudq.backends import backend_from_url

                    self._backend = backend_from_url(
                        self.settings.backend, self.name, clock=self.clock, aws_http=self.settings.aws_http
                    )
        return self._backend

    @property
    def payload_store(self) -> PayloadStore | None:
        """The claim-check store, or ``None`` when ``payload_store`` is not set."""
        if self._payload_store is None and self.settings.payload_store is not None:
            with self._lock:
                if self._payload_store is None:
                    from cloudq.payloads import payload_store_from_url

                    self._payload_store = payload_store_from_url(self.settings.payload_store, self.name)
        return self._payload_store

    @property
    def codec(self) -> Codec:
        """The one encoder and decoder of this app's message bodies (``cloudq.core.codec``)."""
        if self._codec is None:
            from cloudq.core.codec import Codec

            self._codec = Codec(self)
        return self._codec

    # -- names ---------------------------------------------------------------------------

    def physical_queue_name(self, queue: str) -> str:
        """``emails`` of app ``shop`` is SQS queue ``shop-emails``; a Celery queue keeps its name."""
        return physical_queue_name(self.name, queue, self.settings.celery_queues)

    def result_table_name(self) -> str:
        backend = self.settings.backend or ""
        table = backend.removeprefix("dynamodb://").split("?")[0].strip("/")
        return table or results_table_name(self.name)

    def queue_names(self) -> set[str]:
        """Every logical queue a task of this app is routed to, the default queue, the Celery
        and Step Functions queues it serves, and their high lanes (``with_lanes``)."""
        tasks = {task.queue for task in self.tasks.values()}
        served = {*self.settings.celery_queues, *self.settings.stepfunctions_queues}
        return set(self.with_lanes(tasks | {self.settings.default_queue} | served))

    def laned_queues(self) -> set[str]:
        """The logical queues with a high lane: the ``priority_queues`` setting and the queues
        of tasks declared with ``priority="high"``."""
        declared = {task.queue for task in self.tasks.values() if task.flow.priority == HIGH_LANE}
        return declared | set(self.settings.priority_queues)

    def with_lanes(self, queues: Iterable[str]) -> list[str]:
        """``queues`` and, after each that has one, its high lane (``emails``, ``emails-high``)."""
        laned = self.laned_queues()
        found: list[str] = []
        for queue in queues:
            lane = lane_queue_name(queue, HIGH_LANE)
            found += [queue, lane] if queue in laned else [queue]
        return list(dict.fromkeys(found))

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
        retry_backoff: bool | float = ...,
        retry_delay: float = ...,
        default_retry_delay: float | None = None,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
        acks_late: bool = True,
        retry_backoff_max: float | None = None,
        retry_jitter: bool = ...,
        autoretry_for: tuple[type[BaseException], ...] = ...,
        timeout: float | None = None,
        bind: bool = False,
        ignore_result: bool = False,
        deduplicate: bool = True,
        rate_limit: str | None = None,
        rate_key: str | Callable[..., Any] | None = None,
        rate_burst: int = 1,
        max_concurrency: int | None = None,
        concurrency_key: str | Callable[..., Any] | None = None,
        soft_timeout: float | None = None,
        priority: str | None = None,
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(self, fn: Callable[..., Any] | None = None, **options: Any) -> Any:
        """Register a function as a task: ``@app.task`` or ``@app.task(queue="emails", …)``.

        ``bind=True`` passes the task as the first argument (for ``self.retry()`` and
        ``self.request``). ``ignore_result=True`` stores no SUCCESS record (one write less per
        task); ``deduplicate=False`` skips the idempotency claim (one write less; delivery is
        then at least once, a redelivered message runs again). The name defaults to
        ``module.function``, as in Celery. Celery's own option names are taken as
        ``cloudq.core.celery_options.task_options`` maps them (``default_retry_delay``,
        ``time_limit``, ``soft_time_limit``, ``acks_late``, ``retry_backoff=N``).

        Flow control (``cloudq.core.flow``, docs/guides/flow-control.md): ``rate_limit="100/m"``
        (``rate_burst`` tokens at once, ``rate_key`` a bucket per key) and
        ``max_concurrency=N`` (``concurrency_key`` a cap per key) hold across every worker
        and the Lambda function, through the result backend. ``soft_timeout=N`` gives each
        run a deadline; past it ``SoftTimeLimitExceeded`` is raised inside the run.
        ``priority="high"`` sends its calls to the queue's high lane.
        """
        if fn is not None:
            return self._register(fn, options)
        return lambda function: self._register(function, options)

    def _register(self, fn: Callable[..., Any], options: dict[str, Any]) -> Task[Any, Any]:
        name = options.pop("name", None) or default_task_name(fn)
        if name in self.tasks and self.tasks[name].fn is not fn:
            raise TaskRegistrationError(f"task name {name!r} is registered twice")
        task_options(options)  # Celery's names (docs/guides/celery.md)
        policy = RetryPolicy(
            max_retries=_pick(options.pop("max_retries", None), self.settings.max_retries),
            retry_backoff=options.pop("retry_backoff", DEFAULT_RETRY_POLICY.retry_backoff),
            retry_delay=options.pop("retry_delay", DEFAULT_RETRY_POLICY.retry_delay),
            retry_backoff_max=_pick(options.pop("retry_backoff_max", None), self.settings.retry_backoff_max),
            retry_jitter=options.pop("retry_jitter", DEFAULT_RETRY_POLICY.retry_jitter),
            autoretry_for=tuple(options.pop("autoretry_for", DEFAULT_RETRY_POLICY.autoretry_for)),
        )
        task: Task[Any, Any] = self.task_class(
            self,
            fn,
            name=name,
            queue=options.pop("queue", None) or self.settings.default_queue,
            policy=policy,
            timeout=options.pop("timeout", None),
            bind=options.pop("bind", False),
            ignore_result=options.pop("ignore_result", False),
            deduplicate=options.pop("deduplicate", True),
        )
        task.flow = FlowOptions.build(task.arguments, options)
        if options:
            raise TaskRegistrationError(f"unknown task option(s): {', '.join(sorted(options))}")
        self.tasks[name] = task
        return task

    # -- periodic tasks ------------------------------------------------------------------

    def add_periodic(
        self,
        task: Task[Any, Any],
        schedule: str | float | dt.timedelta,
        *,
        args: list[Any] | tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        name: str | None = None,
        timezone: str = "UTC",
    ) -> PeriodicTask:
        """Send ``task`` with these arguments on ``schedule``: an AWS expression
        (``rate(5 minutes)``, ``cron(0 12 * * ? *)``) in ``timezone``, or seconds (``cloudq
        beat`` only). EventBridge Scheduler sends it on AWS (``cloudq infra render``);
        ``cloudq beat`` elsewhere. Arguments that do not fit the task are refused here."""
        from cloudq.core.message import MAX_TASK_ID_CHARS
        from cloudq.core.schedules import PeriodicTask, parse_schedule

        label = name or task.name
        if label in self.periodic_tasks:
            raise TaskRegistrationError(f"periodic task {label!r} is registered twice; give it a name=")
        if len(label) > MAX_TASK_ID_CHARS - 20:
            raise TaskRegistrationError(f"periodic task name {label[:40]!r}…: at most 235 characters")
        try:
            json_args, json_kwargs = task.arguments.encode(tuple(args), dict(kwargs or {}))
        except ArgumentError as exc:
            raise TaskRegistrationError(f"periodic task {label!r}: {exc}") from None
        parsed = parse_schedule(schedule, timezone)
        if parsed.one_off:
            raise TaskRegistrationError(f"periodic task {label!r}: at() is for app.schedules.create")
        periodic = PeriodicTask(label, task.name, task.queue, parsed, json_args, json_kwargs)
        self.periodic_tasks[label] = periodic
        return periodic

    def periodic(
        self,
        schedule: str | float | dt.timedelta,
        *,
        args: list[Any] | tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        name: str | None = None,
        timezone: str = "UTC",
    ) -> Callable[[Task[P, R]], Task[P, R]]:
        """``@app.periodic("rate(1 hour)")`` above ``@app.task``: ``add_periodic`` as a decorator."""

        def register(task: Task[P, R]) -> Task[P, R]:
            if not isinstance(task, Task):
                raise TaskRegistrationError("put @app.periodic(...) above @app.task, on a task")
            self.add_periodic(task, schedule, args=args, kwargs=kwargs, name=name, timezone=timezone)
            return task

        return register

    # -- sending (cloudq.app.sending) ---------------------------------------------------------

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
        message_group_id: str | None = None,
        deduplication_id: str | None = None,
        protocol: str | None = None,
        priority: int | None = None,
        options: SendOptions | None = None,
    ) -> AsyncResult[Any]:
        """Send a task by name, from code that need not import it.

        Arguments must already be JSON (a registered task's ``.delay()`` converts them).
        Delays past the broker's limit (SQS: 15 minutes) are carried as an ``eta`` in the
        envelope: the message hops until then, never held in a worker's memory.
        ``message_group_id``: on a FIFO queue, the ordering unit (messages of one group run
        one at a time, in order; groups run in parallel); on a standard queue, the tenant of
        SQS fair queues. ``deduplication_id``: a FIFO queue drops a second message with the
        same id within 5 minutes (SQS; other engines ignore it). These keyword options build
        one ``SendOptions`` (``cloudq.options``); pass ``options=`` to give the object itself.
        ``protocol="celery"``: in Celery's task protocol 2, which a Celery worker runs (the
        queue must be one of ``celery_queues``, where every send is); Celery's ``priority``
        is refused for now.
        """
        keywords = SendKeywords(
            countdown, eta, expires, queue, task_id, message_group_id, deduplication_id, protocol, priority
        )
        return self.sender.send_task(name, args, kwargs, keywords, options, task=task)

    def encode(self, message: Message, queue: str | None = None) -> str:
        """The body of ``message`` (``cloudq.core.codec``): arguments offloaded past the payload
        threshold, signed with the first signing key (if any), within the broker's limit; in
        Celery's format for a Celery queue."""
        return self.codec.encode(message, queue)

    def send_message(
        self, message: Message, queue: str, *, now: float | None = None, group_id: str | None = None
    ) -> None:
        """Sign, encode and send one envelope, delayed until its ``eta`` (capped at the
        broker's longest delay; the executor re-sends it until the eta is reached)."""
        require_sent(queue, self.send_messages([Outgoing(message, queue, group_id)], now=now))

    def send_messages(self, messages: Sequence[Outgoing], *, now: float | None = None) -> list[SendResult]:
        """Send many envelopes, batched per queue (``cloudq.app.sending.Sender.send``)."""
        return self.sender.send(messages, now=now)

    def send_many(self, signatures: Iterable[Signature[Any]]) -> list[AsyncResult[Any]]:
        """Send many task calls at once (SQS: 10 per call): ``app.send_many([add.s(1, 2), …])``.

        Every signature's arguments are checked before anything is sent. Returns a handle
        per signature, in order; when the broker refuses some, ``PartialSendError`` says
        which (``.failed``) and holds the handles of those sent (``.sent``): none is dropped
        silently."""
        from cloudq.app.canvas import send_signatures

        return send_signatures(self, list(signatures))

    def lambda_handler(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        """Lambda entry point for an SQS trigger (``ReportBatchItemFailures``)."""
        from cloudq.aws_lambda import handle_sqs_event

        return handle_sqs_event(self, event, context)

    def result_expiry(self, now: float | None = None) -> int | None:
        """Epoch seconds when a record written now expires (``result_ttl``), or ``None``."""
        ttl = self.settings.result_ttl
        return ttl_from(self.clock.time() if now is None else now, ttl if ttl > 0 else None)

    def AsyncResult(self, task_id: str) -> AsyncResult[Any]:  # noqa: N802 - Celery's name
        """A handle on a result by id."""
        from cloudq.app.result import AsyncResult

        return AsyncResult(task_id, self)


def _pick(value: Any, default: Any) -> Any:
    return default if value is None else value
