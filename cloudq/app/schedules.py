"""``app.schedules``: schedules made at run time (per tenant, per user), beside the periodic
tasks written in code (``@app.periodic``).

One store per app, decided by the broker (setting ``schedule_store`` overrides it):

- ``scheduler``, for ``sqs://``: EventBridge Scheduler schedules in the app's schedule group,
  each sending the task's body (``Codec.schedule_body``, as the rendered periodic schedules
  do) to the task's queue; nothing of cloudq runs to send them.
- ``backend``, for the other brokers: records in the result backend (``put_schedule`` …),
  which every ``cloudq beat`` reads each tick and sends, each tick once.

A schedule is a ``PeriodicTask`` (``cloudq.core.schedules``): what ``.list()`` returns.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cloudq.core.errors import ArgumentError, ConfigurationError, ScheduleExistsError
from cloudq.core.naming import is_fifo, schedule_group_name
from cloudq.core.schedules import At, PeriodicTask, definition_json, from_definition, parse_schedule

if TYPE_CHECKING:
    from cloudq.app.base import CloudQ
    from cloudq.app.task import Task
    from cloudq.backends.base import ResultBackend
    from cloudq.transports.scheduler import SchedulerStore

#: EventBridge Scheduler's rule for a schedule's name, kept on every store.
NAME = re.compile(r"^[0-9A-Za-z_.-]{1,64}$")
#: The collection of run-time schedules in the result backend.
BACKEND_KEY = "schedules"


def store_of(app: CloudQ) -> str:
    """``scheduler`` or ``backend``: where ``app``'s run-time schedules live."""
    chosen = app.settings.schedule_store
    if chosen is not None:
        return chosen
    return "scheduler" if app.settings.broker.startswith("sqs://") else "backend"


class Schedules:
    """``app.schedules``: create, list and delete the app's run-time schedules."""

    def __init__(self, app: CloudQ) -> None:
        self.app = app
        self._scheduler: SchedulerStore | None = None

    @property
    def store(self) -> str:
        return store_of(self.app)

    def create(
        self,
        name: str,
        task: Task[Any, Any] | str,
        schedule: str | At,
        *,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        timezone: str = "UTC",
    ) -> PeriodicTask:
        """Send ``task`` with these arguments on ``schedule``: ``"rate(…)"``, ``"cron(…)"``
        (in ``timezone``) or ``at(datetime)`` (once, then the schedule is deleted).
        ``ScheduleExistsError`` when ``name`` is taken."""
        periodic = self._build(name, task, schedule, args, kwargs, timezone)
        if self.store == "scheduler":
            self._create_on_scheduler(periodic)
        elif not self._backend().put_schedule(BACKEND_KEY, name, definition_json(periodic)):
            raise ScheduleExistsError(f"schedule {name!r} exists; delete it first")
        return periodic

    def list(self) -> list[PeriodicTask]:
        """The app's run-time schedules, by name."""
        if self.store == "scheduler":
            return [self._from_scheduler(target) for target in self._scheduler_store().list()]
        stored = self._backend().schedules(BACKEND_KEY)
        return [from_definition(name, stored[name]) for name in sorted(stored)]

    def delete(self, name: str) -> bool:
        """Delete schedule ``name``: ``False`` when there is none."""
        if self.store == "scheduler":
            return self._scheduler_store().delete(name)
        return self._backend().delete_schedule(BACKEND_KEY, name)

    def _build(
        self,
        name: str,
        task: Task[Any, Any] | str,
        schedule: str | At,
        args: Sequence[Any],
        kwargs: dict[str, Any] | None,
        timezone: str,
    ) -> PeriodicTask:
        if not isinstance(name, str) or not NAME.match(name):
            raise ConfigurationError(
                f"schedule name {name!r}: 1-64 letters, digits, '-', '_' or '.' "
                "(EventBridge Scheduler's rule)"
            )
        if name in self.app.periodic_tasks:
            raise ScheduleExistsError(f"schedule {name!r} is a periodic task of the app; pick another name")
        if isinstance(schedule, (int, float, dt.timedelta)):
            raise ConfigurationError(f"schedule {schedule!r}: use 'rate(…)', 'cron(…)' or at(datetime)")
        parsed = parse_schedule(schedule, timezone)
        if self.store == "scheduler":
            parsed.aws_expression()  # refuses seconds, which Scheduler cannot run
        else:
            parsed.next_after(0.0)  # refuses what beat cannot evaluate (L, W, #)
        found = self.app.tasks.get(task) if isinstance(task, str) else task
        queue = found.queue if found is not None else self.app.settings.default_queue
        if is_fifo(queue):
            raise ConfigurationError(
                f"schedule {name!r} sends to FIFO queue {queue!r}: every tick sends the same body, "
                "which FIFO deduplication would drop; use a standard queue"
            )
        json_args, json_kwargs = list(args), dict(kwargs or {})
        if found is not None:
            try:
                json_args, json_kwargs = found.arguments.encode(tuple(args), dict(kwargs or {}))
            except ArgumentError as exc:
                raise ConfigurationError(f"schedule {name!r}: {exc}") from None
        task_name = found.name if found is not None else str(task)
        return PeriodicTask(name, task_name, queue, parsed, json_args, json_kwargs)

    def _backend(self) -> ResultBackend:
        backend = self.app.backend
        if backend is None:
            raise ConfigurationError(
                f"run-time schedules of app {self.app.name!r} live in its result backend, and it has "
                "none (backend=None); set backend (CLOUDQ_BACKEND), e.g. redis://host:6379/0"
            )
        return backend

    def _scheduler_store(self) -> SchedulerStore:
        if self._scheduler is None:
            from cloudq.core.urls import parse_url
            from cloudq.transports.scheduler import SchedulerStore

            options = parse_url(self.app.settings.broker, ("sqs",), "broker").options
            self._scheduler = SchedulerStore(
                schedule_group_name(self.app.name),
                self.app.settings.scheduler_role_arn,
                endpoint_url=options.get("endpoint_url"),
                region_name=options.get("region"),
            )
        return self._scheduler

    def _sqs(self) -> Any:
        from cloudq.transports.sqs import SQSTransport

        transport = self.app.transport
        if not isinstance(transport, SQSTransport):
            raise ConfigurationError(
                "schedule_store 'scheduler' sends to SQS queues: use broker sqs:// "
                "or schedule_store 'backend' (with cloudq beat)"
            )
        return transport

    def _create_on_scheduler(self, periodic: PeriodicTask) -> None:
        from cloudq.transports.scheduler import ScheduledTarget

        if self.app.settings.signing_keys:
            raise ConfigurationError(
                f"app {self.app.name!r} requires signatures, and Scheduler's bodies are unsigned (as a "
                "periodic task's): set schedule_store 'backend' (CLOUDQ_SCHEDULE_STORE) and run cloudq beat"
            )

        schedule = periodic.schedule
        target = ScheduledTarget(
            name=periodic.name,
            expression=schedule.aws_expression(),
            timezone=schedule.timezone,
            target_arn=self._sqs().queue_arn(periodic.queue),
            body=self.app.codec.schedule_body(periodic),
        )
        self._scheduler_store().create(target, one_off=schedule.one_off)

    def _from_scheduler(self, target: Any) -> PeriodicTask:
        """A Scheduler schedule as a ``PeriodicTask``: its queue from the target's ARN, its
        task and arguments from the body."""
        import json

        physical = target.target_arn.rpartition(":")[2]
        prefix = self.app.physical_queue_name("")
        queue = physical.removeprefix(prefix) if physical.startswith(prefix) else physical
        try:
            body = json.loads(target.body)
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        schedule = parse_schedule(target.expression, target.timezone)
        args, kwargs = body.get("args") or [], body.get("kwargs") or {}
        return PeriodicTask(target.name, str(body.get("task", "")), queue, schedule, args, kwargs)
