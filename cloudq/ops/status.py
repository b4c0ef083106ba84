"""What ``cloudq status`` shows: per queue its depths, its dead letters, who consumes it and
the age of its oldest message; per task its recent outcomes. Read without receiving a message
(a peek would count as a receive) and without scanning the result table.

Where each figure comes from:

============================  ===========================  ====================  ===========
figure                        SQS on AWS                   SQS on the emulator   Redis
============================  ===========================  ====================  ===========
visible / not visible /       GetQueueAttributes (queue    the same              stats script
delayed / dead letters        and its DLQ)
age of the oldest message     CloudWatch AWS/SQS           n/a (no SQS metrics)  the queue
                              ApproximateAgeOfOldestMessage                      itself
recent outcomes, p50/p95      CloudWatch GetMetricData on  n/a (EMF lines are    n/a
                              the EMF metrics              not made metrics)
progress of running tasks     n/a (DynamoDB: a scan)       n/a (DynamoDB)        its index
============================  ===========================  ====================  ===========

On RabbitMQ the depths come from a passive declare (ready messages; those a consumer holds
are not counted) and the age of the oldest message is n/a: the broker does not tell it.

The progress of running tasks comes from the result backend (``running_progress``): Redis
and memory keep an index of the tasks that reported; DynamoDB has none (a scan of the table
is not a status read), so it says n/a and why.

``metrics="cloudwatch"`` reads CloudWatch whatever the endpoint (a VPC endpoint, or an
emulator's CloudWatch API); ``"none"`` never does. ``"auto"`` reads it for SQS on AWS's own
endpoints only. A CloudWatch failure is a note in the status, not an error: depths still show.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from cloudq.core.clock import SYSTEM_CLOCK, Clock
from cloudq.core.errors import BackendError, ConfigurationError
from cloudq.core.urls import parse_url
from cloudq.ops.cloudwatch import (
    MetricsUnavailableError,
    Readings,
    TaskOutcomes,
    cloudwatch_client,
    is_aws_endpoint,
    read,
)
from cloudq.transports.base import dead_letter_queue_name

if TYPE_CHECKING:
    from cloudq.app.base import CloudQ

METRICS_SOURCES = ("auto", "cloudwatch", "none")
DEFAULT_WINDOW_SECONDS = 900
#: Threads reading queue counters at once (the AWS clients pool 64 connections).
MAX_READERS = 16


@dataclass(frozen=True)
class QueueStatus:
    queue: str
    #: ``worker`` (long-polling workers) or ``lambda`` (the app's function, ``lambda_queues``).
    mode: str
    visible: int
    #: Received and hidden: running, or waiting out a retry's backoff.
    not_visible: int
    delayed: int
    dead_letters: int
    #: ``None``: the platform does not say (shown as n/a).
    oldest_age_seconds: float | None


@dataclass(frozen=True)
class RunningTask:
    """A running task's last progress report (``set_progress``)."""

    task_id: str
    task: str
    done: float
    total: float | None
    message: str | None


#: Running tasks shown at most.
RUNNING_LIMIT = 20


@dataclass(frozen=True)
class Status:
    app: str
    broker: str
    window_seconds: int
    queues: list[QueueStatus]
    #: ``None`` when there is no source for them (``outcomes_source`` says why).
    outcomes: list[TaskOutcomes] | None
    outcomes_source: str
    oldest_age_source: str
    #: ``None`` when the backend cannot list them cheaply (``running_source`` says why).
    running: list[RunningTask] | None = None
    running_source: str = ""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class StatusReader:
    """Reads an app's status; one instance per ``--watch`` session (clients and queue URLs are
    kept between refreshes)."""

    def __init__(
        self,
        app: CloudQ,
        *,
        window_seconds: int = DEFAULT_WINDOW_SECONDS,
        metrics: str = "auto",
        cloudwatch: Any = None,
        metrics_interval_seconds: float = 0.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if metrics not in METRICS_SOURCES:
            raise ConfigurationError(
                f"metrics source {metrics!r}: choose one of {', '.join(METRICS_SOURCES)}"
            )
        self.app = app
        self.window_seconds = window_seconds
        self.engine = parse_url(app.settings.broker, ("sqs", "memory", "redis", "amqp", "amqps"), "broker")
        self._cloudwatch = cloudwatch
        # A live page refreshes every few seconds; GetMetricData is billed per metric read and
        # SQS publishes once a minute, so a reading is kept this long (0: read every time).
        self._metrics_interval = metrics_interval_seconds
        self._clock = clock
        self._last: tuple[float, Readings | str] | None = None
        self._note = ""
        if metrics != "none" and self.engine.scheme == "sqs" and cloudwatch is None:
            options = self.engine.options
            self._cloudwatch = cloudwatch_client(options.get("endpoint_url"), options.get("region"))
        if self._cloudwatch is not None and metrics == "auto" and not is_aws_endpoint(self._cloudwatch):
            self._note = (
                "n/a: the emulator has no CloudWatch metrics (--metrics cloudwatch reads its API anyway)"
            )
            self._cloudwatch = None
        if metrics == "none":
            self._note = "n/a: --metrics none"
            self._cloudwatch = None
        elif self.engine.scheme != "sqs" and self._cloudwatch is None:
            self._note = (
                f"n/a: on {self.engine.scheme} the metrics are EMF log lines only; nothing aggregates them"
            )

    def read(self) -> Status:
        app, transport = self.app, self.app.transport
        lambda_queues = set(app.settings.lambda_queues)
        logical = sorted(app.queue_names())
        names = [name for queue in logical for name in (queue, dead_letter_queue_name(queue))]
        # One call per queue and per dead-letter queue, side by side (a round trip each on SQS:
        # 20 queues one after another took 0.7 s; bench/bench_dashboard.py)
        with ThreadPoolExecutor(min(MAX_READERS, len(names)), thread_name_prefix="cloudq-status") as pool:
            found = list(pool.map(transport.stats, names))
        depths = []
        for index, queue in enumerate(logical):
            stats, dead = found[2 * index], found[2 * index + 1]
            depths.append((queue, stats, dead.visible + dead.in_flight + dead.delayed))
        outcomes, outcomes_source, ages = None, self._note, {}
        if self._cloudwatch is not None:
            readings = self._readings([app.physical_queue_name(queue) for queue, _, _ in depths])
            if isinstance(readings, str):
                outcomes_source = f"n/a: {readings}"
            else:
                outcomes, ages = readings.outcomes, readings.oldest_age_seconds
                outcomes_source = f"CloudWatch EMF metrics, last {self.window_seconds // 60} min"
        queues = [
            QueueStatus(
                queue=queue,
                mode="lambda" if queue in lambda_queues else "worker",
                visible=stats.visible,
                not_visible=stats.in_flight,
                delayed=stats.delayed,
                dead_letters=dead,
                oldest_age_seconds=_age(stats.oldest_age_seconds, ages.get(app.physical_queue_name(queue))),
            )
            for queue, stats, dead in depths
        ]
        running, running_source = self._running()
        return Status(
            app=app.name,
            broker=transport.describe(),
            window_seconds=self.window_seconds,
            queues=queues,
            outcomes=outcomes,
            outcomes_source=outcomes_source,
            oldest_age_source=self._age_source(),
            running=running,
            running_source=running_source,
        )

    def outcomes(self) -> tuple[list[TaskOutcomes] | None, str]:
        """The recent outcomes alone (and where they come from), without reading the queues."""
        if self._cloudwatch is None:
            return None, self._note
        readings = self._readings(
            [self.app.physical_queue_name(queue) for queue in sorted(self.app.queue_names())]
        )
        if isinstance(readings, str):
            return None, f"n/a: {readings}"
        return readings.outcomes, f"CloudWatch EMF metrics, last {self.window_seconds // 60} min"

    def _readings(self, physical: list[str]) -> Readings | str:
        """CloudWatch's readings (or why there are none), read again once the last is older than
        ``metrics_interval_seconds``."""
        now = self._clock.monotonic()
        if self._last is not None and now - self._last[0] < self._metrics_interval:
            return self._last[1]
        tasks = sorted((task.name, task.queue) for task in self.app.tasks.values())
        try:
            found: Readings | str = read(
                self._cloudwatch, self.app.name, tasks, physical, self.window_seconds
            )
        except MetricsUnavailableError as exc:
            found = str(exc)
        self._last = (now, found)
        return found

    def _running(self) -> tuple[list[RunningTask] | None, str]:
        """The progress of running tasks, and where it comes from (or why it is n/a)."""
        backend = self.app.backend
        if backend is None:
            return None, "n/a: no result backend"
        try:
            records = backend.running_progress(self.app.clock.time(), RUNNING_LIMIT)
        except BackendError as exc:
            return None, f"n/a: {exc}"
        if records is None:
            return None, (
                f"n/a: {self.app.settings.backend} lists no running tasks without scanning the table; "
                "read one task's with AsyncResult(id).progress"
            )
        running = [
            RunningTask(record.task_id, record.task_name, progress.done, progress.total, progress.message)
            for record in records
            if (progress := record.progress) is not None
        ]
        return running, f"the result backend's progress index, latest {RUNNING_LIMIT}"

    def _age_source(self) -> str:
        if self.engine.scheme in ("amqp", "amqps"):
            return "n/a: RabbitMQ does not tell it without receiving"
        if self.engine.scheme != "sqs":
            return "the queue itself"
        if self._cloudwatch is not None:
            return "CloudWatch AWS/SQS ApproximateAgeOfOldestMessage (latest minute)"
        return "n/a: SQS gives it to CloudWatch only"


def _age(from_queue: float | None, from_cloudwatch: float | None) -> float | None:
    return from_queue if from_queue is not None else from_cloudwatch


def read_status(app: CloudQ, **options: Any) -> Status:
    """One reading (``StatusReader(app, **options).read()``)."""
    return StatusReader(app, **options).read()
