"""What an app needs on AWS, derived from the app alone: queues (each with its dead-letter
queue and redrive policy), the result table and the Lambda worker. This module owns every
deployed name and number (physical names, logical ids, redrive count, visibility timeouts,
the Lambda runtime and mapping rules); the renderers (``cloudq.infra.cloudformation``,
``cloudq.infra.serverless``) turn it into templates and the emulator deploys those, so the
three never disagree."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from pydantic import BaseModel

from cloudq.app.schedules import store_of
from cloudq.core.deadlines import seconds_needed
from cloudq.core.errors import ConfigurationError
from cloudq.core.naming import (
    DEFAULT_VISIBILITY_TIMEOUT,
    dead_letter_queue_name,
    is_fifo,
    lane_of,
    schedule_group_name,
)
from cloudq.core.pointer import ARGUMENTS_FOLDER, RESULTS_FOLDER

if TYPE_CHECKING:
    from cloudq.app.base import CloudQ

#: DynamoDB result table layout, shared by the backend and provisioning.
TABLE_KEY = "task_id"
TABLE_TTL_ATTRIBUTE = "expires_at"
#: Redrive headroom over the largest attempt count of a queue's tasks: the executor
#: dead-letters failures itself; the redrive policy only catches messages whose worker died
#: before the executor could (crashes while decoding, poison that kills a process).
REDRIVE_HEADROOM = 3
SQS_MAX_RETENTION_SECONDS = 1_209_600
LAMBDA_HANDLER = "cloudq.aws_lambda.handler"
#: The runtime AWS runs the function with (the emulator runs it with its own Python); the
#: newest Python that Serverless Framework v3 accepts.
LAMBDA_RUNTIME = "python3.11"
LAMBDA_VISIBILITY_FACTOR = 6
#: Argument objects outlive any message that points to them: SQS keeps a message (and its
#: dead-letter copy, counted from the first send) at most 14 days.
PAYLOAD_ARGUMENT_DAYS = math.ceil(SQS_MAX_RETENTION_SECONDS / 86_400) + 1
#: The longest physical name EventBridge Scheduler takes for a schedule.
SCHEDULE_NAME_CHARS = 64


def logical_id(name: str, kind: str) -> str:
    """A CloudFormation logical id: ``orders.fifo`` + ``Queue`` → ``OrdersFifoQueue``."""
    words = re.split(r"[^A-Za-z0-9]+", name)
    return "".join(word[:1].upper() + word[1:] for word in words if word) + kind


def stack_name(app: str) -> str:
    """The CloudFormation stack of app ``shop``: ``shop-cloudq``."""
    return f"{app}-cloudq"


class QueueResource(BaseModel):
    logical_name: str
    name: str
    dead_letter_name: str
    fifo: bool
    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT
    max_receive_count: int
    message_retention_seconds: int = SQS_MAX_RETENTION_SECONDS

    @property
    def logical_id(self) -> str:
        return logical_id(self.logical_name, "Queue")

    @property
    def dead_letter_logical_id(self) -> str:
        return logical_id(self.logical_name, "DeadLetterQueue")


class TableResource(BaseModel):
    name: str
    key: str = TABLE_KEY
    ttl_attribute: str = TABLE_TTL_ATTRIBUTE


class LambdaResource(BaseModel):
    """The app's Lambda worker: one function, one SQS event source mapping per queue."""

    function_name: str
    handler: str = LAMBDA_HANDLER
    runtime: str = LAMBDA_RUNTIME
    #: ``CLOUDQ_APP`` of the function: the ``module:app`` it loads.
    app_reference: str
    queues: list[str]
    timeout: int
    memory_mb: int
    batch_size: int
    batching_window: int
    maximum_concurrency: int | None
    #: ``MaximumConcurrency`` of single queues' mappings (logical name), over the one above.
    queue_concurrency: dict[str, int] = {}

    def concurrency_of(self, queue: str) -> int | None:
        """The ``MaximumConcurrency`` of ``queue``'s mapping (logical name), or ``None``."""
        return self.queue_concurrency.get(queue, self.maximum_concurrency)


class BucketResource(BaseModel):
    """The payload store's bucket (``payload_store="s3://bucket/prefix"``), its objects
    expiring by lifecycle rules: arguments after ``argument_days``, results after
    ``result_days`` (``None``: kept, as results are with ``result_ttl=0``)."""

    name: str
    prefix: str
    argument_days: int = PAYLOAD_ARGUMENT_DAYS
    result_days: int | None
    logical_id: str = "PayloadBucket"

    def rules(self) -> list[tuple[str, str, int]]:
        """(rule id, key prefix, days) of each lifecycle rule."""
        found = [("cloudq-arguments", self.prefix + ARGUMENTS_FOLDER, self.argument_days)]
        if self.result_days is not None:
            found.append(("cloudq-results", self.prefix + RESULTS_FOLDER, self.result_days))
        return found


class ScheduleResource(BaseModel):
    """One periodic task on EventBridge Scheduler: its queue gets ``body`` every tick."""

    logical_name: str
    name: str
    expression: str
    timezone: str
    #: The logical queue it sends to.
    queue: str
    body: str

    @property
    def logical_id(self) -> str:
        return logical_id(self.logical_name, "Schedule")


class Resources(BaseModel):
    app: str
    #: The ``module:app`` workers and the function load.
    app_reference: str = ""
    queues: list[QueueResource]
    table: TableResource | None
    function: LambdaResource | None = None
    bucket: BucketResource | None = None
    schedules: list[ScheduleResource] = []
    #: The app serves Step Functions (``stepfunctions_queues``): its workers report back.
    stepfunctions: bool = False
    #: The schedule group of the app's run-time schedules (``app.schedules`` on Scheduler).
    schedule_group: str | None = None

    @property
    def has_scheduler_role(self) -> bool:
        """Whether the stack has the role EventBridge Scheduler sends with."""
        return bool(self.schedules) or self.schedule_group is not None

    @property
    def stack_name(self) -> str:
        return stack_name(self.app)

    @property
    def dashboard_name(self) -> str:
        """The app's CloudWatch dashboard (``cloudq.infra.dashboard``): ``shop-cloudq``."""
        return stack_name(self.app)

    def worker_queues(self) -> list[QueueResource]:
        """The queues long-polling workers consume: those no Lambda function does."""
        consumed = set(self.function.queues) if self.function else set()
        return [queue for queue in self.queues if queue.logical_name not in consumed]

    def mapping_warnings(self) -> list[str]:
        """AWS's rule for each SQS event source mapping (``check_mapping``), applied to every
        Lambda queue: raises on an error, returns the warnings."""
        function = self.function
        if function is None:
            return []
        found = [
            check_mapping(function.timeout, queue.name, queue.visibility_timeout)
            for queue in self.queues
            if queue.logical_name in function.queues
        ]
        return [warning for warning in found if warning]


def app_resources(app: CloudQ, app_reference: str | None = None) -> Resources:
    """The resources ``app`` uses: one queue per queue it uses (``used_queues``), the DynamoDB
    result table when its backend is ``dynamodb://``, and the Lambda worker when
    ``lambda_queues`` is set (``app_reference`` is its ``CLOUDQ_APP``)."""
    unknown = set(app.settings.lambda_queues) - app.queue_names()
    if unknown:
        raise ConfigurationError(
            f"lambda_queues names queue(s) no task uses: {', '.join(sorted(unknown))}; "
            f"app queues: {', '.join(sorted(app.queue_names()))}"
        )
    queues = []
    for logical in sorted(used_queues(app)):
        attempts = max(
            (task.max_retries + 1 for task in app.tasks.values() if task.queue == logical),
            default=app.settings.max_retries + 1,
        )
        queues.append(
            QueueResource(
                logical_name=logical,
                name=app.physical_queue_name(logical),
                dead_letter_name=app.physical_queue_name(dead_letter_queue_name(logical)),
                fifo=is_fifo(logical),
                visibility_timeout=_visibility_timeout(app, logical),
                max_receive_count=attempts + REDRIVE_HEADROOM,
            )
        )
    table = None
    backend = app.settings.backend
    if backend is not None and backend.startswith("dynamodb://"):
        table = TableResource(name=app.result_table_name())
    reference = app_reference or f"{app.name}:app"
    return Resources(
        app=app.name,
        app_reference=reference,
        queues=queues,
        table=table,
        function=_function(app, reference),
        bucket=_bucket(app),
        schedules=_schedules(app),
        stepfunctions=bool(app.settings.stepfunctions_queues),
        schedule_group=schedule_group_name(app.name) if store_of(app) == "scheduler" else None,
    )


def used_queues(app: CloudQ) -> set[str]:
    """The queues its tasks route to, periodic tasks send to, ``lambda_queues``,
    ``celery_queues`` or ``stepfunctions_queues`` name; the default queue only when one of these
    is it, or the app has no task at all (a producer sending by name): a Lambda-only app gets no
    idle ``default`` queue and no worker service."""
    used = {task.queue for task in app.tasks.values()} | set(app.settings.lambda_queues)
    used |= {periodic.queue for periodic in app.periodic_tasks.values()}
    used |= set(app.settings.celery_queues)  # served for Celery's producers (issue 25)
    used |= set(app.settings.stepfunctions_queues)  # served for Step Functions (issue 27)
    used |= set(app.settings.priority_queues)
    # Each priority lane is a queue of its own, with its own dead-letter queue.
    return set(app.with_lanes(sorted(used or {app.settings.default_queue})))


def _bucket(app: CloudQ) -> BucketResource | None:
    store = app.settings.payload_store
    if store is None or not store.startswith("s3://"):
        return None
    bucket, _, prefix = store.removeprefix("s3://").split("?")[0].strip("/").partition("/")
    ttl = app.settings.result_ttl
    return BucketResource(
        name=bucket,
        prefix=prefix + "/" if prefix else "",
        result_days=math.ceil(ttl / 86_400) + 1 if ttl > 0 else None,
    )


def _schedules(app: CloudQ) -> list[ScheduleResource]:
    """One schedule per periodic task; AWS refuses seconds, and cannot deduplicate the same
    body sent to a FIFO queue every tick."""
    found = []
    for periodic in sorted(app.periodic_tasks.values(), key=lambda p: p.name):
        if is_fifo(periodic.queue):
            raise ConfigurationError(
                f"periodic task {periodic.name!r} sends to FIFO queue {periodic.queue!r}: EventBridge "
                "Scheduler sends the same body every tick, which FIFO deduplication would drop; use a "
                "standard queue"
            )
        name = re.sub(r"[^0-9A-Za-z_.-]", "-", f"{app.name}-{periodic.name}")[:SCHEDULE_NAME_CHARS]
        found.append(
            ScheduleResource(
                logical_name=periodic.name,
                name=name,
                expression=periodic.schedule.aws_expression(),
                timezone=periodic.schedule.timezone,
                queue=periodic.queue,
                body=app.codec.schedule_body(periodic),
            )
        )
    return found


def _visibility_timeout(app: CloudQ, queue: str) -> int:
    """AWS advises a Lambda-consumed queue's visibility timeout of 6x the function timeout, so
    retries of a throttled or timed-out batch do not overlap the running one."""
    if lane_of(queue)[0] in app.settings.lambda_queues:
        return max(DEFAULT_VISIBILITY_TIMEOUT, LAMBDA_VISIBILITY_FACTOR * app.settings.lambda_timeout)
    return DEFAULT_VISIBILITY_TIMEOUT


def _function(app: CloudQ, app_reference: str) -> LambdaResource | None:
    settings = app.settings
    if not settings.lambda_queues:
        return None
    queues = app.with_lanes(settings.lambda_queues)  # a lane gets its own mapping
    unknown = set(settings.lambda_queue_concurrency) - set(queues)
    if unknown:
        raise ConfigurationError(
            f"lambda_queue_concurrency names queue(s) the function does not consume: "
            f"{', '.join(sorted(unknown))}; its queues: {', '.join(queues)}"
        )
    for task in sorted(app.tasks.values(), key=lambda t: t.name):
        needed = seconds_needed(task)
        if task.queue in settings.lambda_queues and needed > settings.lambda_timeout:
            raise ConfigurationError(
                f"task {task.name!r} on Lambda queue {task.queue!r} needs {needed:g} s (its timeout and "
                f"a margin) but lambda_timeout is {settings.lambda_timeout} s: the handler would never "
                f"start it; raise lambda_timeout to at least {math.ceil(needed)}"
            )
    return LambdaResource(
        function_name=f"{app.name}-worker",
        app_reference=app_reference,
        queues=queues,
        timeout=settings.lambda_timeout,
        memory_mb=settings.lambda_memory_mb,
        batch_size=settings.lambda_batch_size,
        batching_window=settings.lambda_batching_window,
        maximum_concurrency=settings.lambda_maximum_concurrency,
        queue_concurrency=dict(settings.lambda_queue_concurrency),
    )


def check_mapping(function_timeout: int, queue_name: str, visibility_timeout: int) -> str | None:
    """AWS's rule for an SQS event source mapping (CreateEventSourceMapping refuses a queue whose
    visibility timeout is under the function timeout): an error above, a warning under 6x."""
    if function_timeout > visibility_timeout:
        raise ConfigurationError(
            f"queue {queue_name}: visibility timeout {visibility_timeout}s is less than the function "
            f"timeout {function_timeout}s (AWS refuses this mapping); raise the visibility timeout"
        )
    advised = LAMBDA_VISIBILITY_FACTOR * function_timeout
    if visibility_timeout < advised:
        return (
            f"queue {queue_name}: visibility timeout {visibility_timeout}s is under "
            f"{LAMBDA_VISIBILITY_FACTOR}x the function timeout {function_timeout}s; AWS advises at "
            f"least {advised}s so a retried batch does not overlap a running one"
        )
    return None
