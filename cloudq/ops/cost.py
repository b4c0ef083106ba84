"""What an app costs, from what CloudWatch counted over a window (``cloudq status --cost``).

CloudWatch counts messages, while SQS bills requests; each billed request is derived so:

==========================  =================================  ===========================
billed requests             from                               exact?
==========================  =================================  ===========================
empty receives              NumberOfEmptyReceives              exact: one per request
receives that return        NumberOfMessagesReceived           at most: one per message
messages                                                       (a batch of n is 1 request)
sends                       NumberOfMessagesSent               at most (a batch send of n
                                                               is 1 request)
deletes                     NumberOfMessagesDeleted            at most (DeleteMessageBatch)
==========================  =================================  ===========================

Not counted: visibility changes (heartbeats of long tasks), each further 64 KiB of a large
message, CloudWatch itself. DynamoDB: ConsumedRead/WriteCapacityUnits at on-demand prices
(a provisioned table is billed by capacity instead). Lambda: Invocations, and Duration ×
the function's memory.

Tasks are the messages deleted from the app's queues (each finished run deletes its
message). The cost per million tasks is everything but the empty receives, per task; the
idle cost per day is the empty receives' rate over the window, for a whole day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from cloudq.ops.prices import Prices

if TYPE_CHECKING:
    from cloudq.app.base import CloudQ

MILLION = 1_000_000
DAY_SECONDS = 86_400
#: SQS's longest long-poll wait and largest batch.
LONGEST_WAIT_SECONDS = 20.0
LARGEST_BATCH = 10


@dataclass(frozen=True)
class QueueUsage:
    """One queue's sums over the window."""

    name: str
    fifo: bool
    #: ``worker`` or ``lambda`` (as in ``cloudq status``).
    mode: str
    sent: float
    received: float
    deleted: float
    empty_receives: float


@dataclass(frozen=True)
class Usage:
    window_seconds: int
    queues: list[QueueUsage]
    read_units: float
    write_units: float
    lambda_invocations: float
    lambda_duration_ms: float
    lambda_memory_mb: int
    #: Per-worker long-poll wait (``Settings.wait_seconds``).
    wait_seconds: float
    has_results: bool


@dataclass(frozen=True)
class Line:
    item: str
    quantity: float
    dollars: float
    #: How the quantity was derived ("exact", "at most").
    basis: str


@dataclass(frozen=True)
class Advice:
    option: str
    #: Dollars saved per million tasks, and per idle day.
    per_million_tasks: float
    idle_per_day: float
    why: str


@dataclass(frozen=True)
class CostReport:
    window_seconds: int
    tasks: float
    lines: list[Line]
    #: ``None`` with a reason in ``note`` (no task finished in the window; no data).
    per_million_tasks: float | None
    idle_per_day: float | None
    advice: list[Advice]
    prices: Prices
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _sqs_price(prices: Prices, queue: QueueUsage) -> float:
    return (prices.sqs_fifo_per_million if queue.fifo else prices.sqs_standard_per_million) / MILLION


def lines_of(usage: Usage, prices: Prices) -> list[Line]:
    """The window's bill, one line per kind of request or unit."""

    def sqs(attribute: str) -> float:
        return sum(float(getattr(queue, attribute)) * _sqs_price(prices, queue) for queue in usage.queues)

    def total(attribute: str) -> float:
        return sum(float(getattr(queue, attribute)) for queue in usage.queues)

    gb_seconds = usage.lambda_duration_ms / 1000 * usage.lambda_memory_mb / 1024
    return [
        Line("SQS empty receives", total("empty_receives"), sqs("empty_receives"), "exact"),
        Line("SQS receives that return messages", total("received"), sqs("received"), "at most"),
        Line("SQS sends", total("sent"), sqs("sent"), "at most"),
        Line("SQS deletes", total("deleted"), sqs("deleted"), "at most"),
        Line(
            "DynamoDB write units",
            usage.write_units,
            usage.write_units * prices.dynamodb_write_per_million / MILLION,
            "exact",
        ),
        Line(
            "DynamoDB read units",
            usage.read_units,
            usage.read_units * prices.dynamodb_read_per_million / MILLION,
            "exact",
        ),
        Line(
            "Lambda invocations",
            usage.lambda_invocations,
            usage.lambda_invocations * prices.lambda_per_million / MILLION,
            "exact",
        ),
        Line("Lambda GB-seconds", gb_seconds, gb_seconds * prices.lambda_gb_second, "exact"),
    ]


def estimate(usage: Usage, prices: Prices) -> CostReport:
    lines = lines_of(usage, prices)
    tasks = sum(queue.deleted for queue in usage.queues)
    idle_window = lines[0].dollars
    idle_per_day = idle_window * DAY_SECONDS / usage.window_seconds
    busy = sum(line.dollars for line in lines[1:])
    note = ""
    per_million: float | None = None
    if tasks:
        per_million = busy / tasks * MILLION
    else:
        note = "n/a per task: no task finished in the window (no NumberOfMessagesDeleted)"
    return CostReport(
        usage.window_seconds,
        tasks,
        lines,
        per_million,
        idle_per_day,
        advise(usage, prices, lines, tasks),
        prices,
        note,
    )


def advise(usage: Usage, prices: Prices, lines: list[Line], tasks: float) -> list[Advice]:
    """What each cloudq option would save, from the same figures."""
    found: list[Advice] = []
    write = prices.dynamodb_write_per_million
    if usage.has_results and tasks:
        # Each finished task writes its claim, then its result: about one unit each (< 1 KB).
        per_task = min(1.0, usage.write_units / tasks / 2)
        found.append(
            Advice(
                "ignore_result=True",
                per_task * write,
                0.0,
                f"no result write: {per_task:.2f} write unit per task",
            )
        )
        found.append(
            Advice(
                "deduplicate=False",
                per_task * write,
                0.0,
                f"no claim write before the run: {per_task:.2f} write unit per task"
                "; a redelivered message may then run twice",
            )
        )
    worker_empty = [queue for queue in usage.queues if queue.mode == "worker" and queue.empty_receives]
    if worker_empty and usage.wait_seconds < LONGEST_WAIT_SECONDS:
        share = 1 - usage.wait_seconds / LONGEST_WAIT_SECONDS
        dollars = (
            sum(q.empty_receives * _sqs_price(prices, q) for q in worker_empty)
            * DAY_SECONDS
            / usage.window_seconds
        )
        found.append(
            Advice(
                f"wait_seconds={LONGEST_WAIT_SECONDS:g}",
                0.0,
                dollars * share,
                f"an idle worker polls {LONGEST_WAIT_SECONDS / max(usage.wait_seconds, 1):.0f}× less "
                f"often than at {usage.wait_seconds:g} s",
            )
        )
    if tasks:
        per_message = (lines[1].dollars + lines[3].dollars) / tasks * MILLION
        cut = 1 - 1 / LARGEST_BATCH
        found.append(
            Advice(
                f"batches of {LARGEST_BATCH} (lambda_batch_size, busy workers)",
                per_message * cut,
                0.0,
                "a receive and a delete per 10 messages instead of per message, at best",
            )
        )
    return found


def usage_of(app: CloudQ, readings: dict[str, float], window_seconds: int) -> Usage:
    """The ``Usage`` of ``app`` from summed metric readings (``cost_queries``' ids)."""
    from cloudq.infra.model import app_resources

    resources = app_resources(app)
    lambda_queues = set(app.settings.lambda_queues)
    queues = [
        QueueUsage(
            queue.name,
            queue.fifo,
            "lambda" if queue.logical_name in lambda_queues else "worker",
            *(readings.get(f"q{index}_{key}", 0.0) for key in ("sent", "received", "deleted", "empty")),
        )
        for index, queue in enumerate(resources.queues)
    ]
    return Usage(
        window_seconds,
        queues,
        readings.get("table_read", 0.0),
        readings.get("table_write", 0.0),
        readings.get("fn_invocations", 0.0),
        readings.get("fn_duration", 0.0),
        resources.function.memory_mb if resources.function else app.settings.lambda_memory_mb,
        app.settings.wait_seconds,
        resources.table is not None,
    )


SQS_METRICS = {
    "sent": "NumberOfMessagesSent",
    "received": "NumberOfMessagesReceived",
    "deleted": "NumberOfMessagesDeleted",
    "empty": "NumberOfEmptyReceives",
}


def cost_metrics(app: CloudQ) -> dict[str, tuple[str, str, dict[str, str]]]:
    """The CloudWatch metrics the cost is read from, by query id (``usage_of`` reads them)."""
    from cloudq.infra.model import app_resources

    resources = app_resources(app)
    metrics: dict[str, tuple[str, str, dict[str, str]]] = {}
    for index, queue in enumerate(resources.queues):
        for key, metric in SQS_METRICS.items():
            metrics[f"q{index}_{key}"] = ("AWS/SQS", metric, {"QueueName": queue.name})
    if resources.table is not None:
        table = {"TableName": resources.table.name}
        metrics["table_read"] = ("AWS/DynamoDB", "ConsumedReadCapacityUnits", table)
        metrics["table_write"] = ("AWS/DynamoDB", "ConsumedWriteCapacityUnits", table)
    if resources.function is not None:
        function = {"FunctionName": resources.function.function_name}
        metrics["fn_invocations"] = ("AWS/Lambda", "Invocations", function)
        metrics["fn_duration"] = ("AWS/Lambda", "Duration", function)
    return metrics


def read_cost(
    app: CloudQ,
    window_seconds: int,
    *,
    cloudwatch: Any = None,
    prices: Prices | None = None,
    now: dt.datetime | None = None,
) -> CostReport | str:
    """The app's cost over the last ``window_seconds``, or why there is none (n/a: …)."""
    from cloudq.core.urls import parse_url
    from cloudq.ops.cloudwatch import MetricsUnavailableError, cloudwatch_client, read_sums
    from cloudq.ops.prices import prices_for

    engine = parse_url(app.settings.broker, ("sqs", "memory", "redis", "amqp", "amqps"), "broker")
    if engine.scheme != "sqs":
        return f"n/a: the cost is derived from AWS's metrics; on {engine.scheme} nothing bills requests"
    client = cloudwatch or cloudwatch_client(engine.options.get("endpoint_url"), engine.options.get("region"))
    try:
        readings = read_sums(client, cost_metrics(app), window_seconds, now)
    except MetricsUnavailableError as exc:
        return f"n/a: {exc}"
    if not readings:
        return (
            f"n/a: CloudWatch has no SQS, DynamoDB or Lambda datapoint of this app in the last "
            f"{window_seconds // 60} min (an emulator has none unless they are put)"
        )
    region = engine.options.get("region") or client.meta.region_name
    return estimate(usage_of(app, readings, window_seconds), prices or prices_for(region))
