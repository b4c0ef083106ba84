"""Reading back what CloudWatch holds for an app: the EMF task metrics (``cloudq.runtime.metrics``) and
SQS's ApproximateAgeOfOldestMessage, in as few GetMetricData calls as possible (one for up to
500 queries: five per task, one per queue).

Botocore errors are mapped here, once, to ``MetricsUnavailableError`` (``cloudq status`` shows
the reason instead of the figures).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from cloudq.backends.base import State
from cloudq.core.aws import aws_client
from cloudq.core.errors import CloudQError
from cloudq.runtime.metrics import COUNT_METRICS, DURATION_METRIC, NAMESPACE

#: GetMetricData takes at most 500 queries per call.
MAX_QUERIES_PER_CALL = 500
#: SQS publishes its metrics once a minute.
SQS_PERIOD_SECONDS = 60
PERCENTILES = ("p50", "p95")


class MetricsUnavailableError(CloudQError):
    """CloudWatch could not be read (permissions, endpoint, throttling)."""


@dataclass(frozen=True)
class TaskOutcomes:
    """What the EMF metrics say about one task over the window."""

    task: str
    queue: str
    succeeded: int
    retried: int
    failed: int
    #: Handling time percentiles (ms); ``None`` when the task did not run in the window.
    p50_ms: float | None
    p95_ms: float | None


@dataclass(frozen=True)
class Readings:
    outcomes: list[TaskOutcomes]
    #: Physical queue name → seconds, for queues CloudWatch had a recent datapoint of.
    oldest_age_seconds: dict[str, float]
    #: GetMetricData calls this reading made.
    calls: int


def cloudwatch_client(endpoint_url: str | None = None, region_name: str | None = None) -> Any:
    return aws_client("cloudwatch", endpoint_url, region_name, read_timeout=10, attempts=3)


def is_aws_endpoint(client: Any) -> bool:
    """Whether ``client`` talks to AWS itself (not an emulator's custom endpoint)."""
    host = str(client.meta.endpoint_url).split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return host.endswith((".amazonaws.com", ".amazonaws.com.cn"))


@contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise MetricsUnavailableError(f"CloudWatch GetMetricData refused ({code}): {exc}") from exc
    except BotoCoreError as exc:
        raise MetricsUnavailableError(f"CloudWatch unreachable: {exc}") from exc


def _stat(
    query_id: str, namespace: str, metric: str, dimensions: dict[str, str], period: int, stat: str
) -> dict[str, Any]:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Namespace": namespace,
                "MetricName": metric,
                "Dimensions": [{"Name": name, "Value": value} for name, value in dimensions.items()],
            },
            "Period": period,
            "Stat": stat,
        },
        "ReturnData": True,
    }


def read(
    client: Any,
    app: str,
    tasks: Sequence[tuple[str, str]],
    queues: Sequence[str],
    window_seconds: int,
    now: dt.datetime | None = None,
) -> Readings:
    """The outcomes of ``tasks`` (name, logical queue) over the last ``window_seconds``, and
    the latest age of the oldest message of each physical queue in ``queues``."""
    end = now or dt.datetime.now(dt.timezone.utc)
    period = max(SQS_PERIOD_SECONDS, math.ceil(window_seconds / 60) * 60)
    start = end - dt.timedelta(seconds=period)
    queries: list[dict[str, Any]] = []
    for index, (task, queue) in enumerate(tasks):
        dimensions = {"App": app, "Queue": queue, "Task": task}
        for state, metric in COUNT_METRICS.items():
            queries.append(
                _stat(f"t{index}_{state.value.lower()}", NAMESPACE, metric, dimensions, period, "Sum")
            )
        for percentile in PERCENTILES:
            queries.append(
                _stat(f"t{index}_{percentile}", NAMESPACE, DURATION_METRIC, dimensions, period, percentile)
            )
    for index, name in enumerate(queues):
        queries.append(
            _stat(
                f"q{index}",
                "AWS/SQS",
                "ApproximateAgeOfOldestMessage",
                {"QueueName": name},
                SQS_PERIOD_SECONDS,
                "Maximum",
            )
        )
    values, calls = _get(client, queries, start, end)
    outcomes = []
    for index, (task, queue) in enumerate(tasks):
        counts = {
            state: int(sum(values.get(f"t{index}_{state.value.lower()}", []))) for state in COUNT_METRICS
        }
        p50, p95 = (_latest(values.get(f"t{index}_{p}", [])) for p in PERCENTILES)
        outcomes.append(
            TaskOutcomes(
                task, queue, counts[State.SUCCESS], counts[State.RETRY], counts[State.FAILURE], p50, p95
            )
        )
    ages = {
        name: age
        for index, name in enumerate(queues)
        if (age := _latest(values.get(f"q{index}", []))) is not None
    }
    return Readings(outcomes, ages, calls)


def _latest(values: list[float]) -> float | None:
    return values[0] if values else None  # GetMetricData returns the newest first


def _get(
    client: Any, queries: list[dict[str, Any]], start: dt.datetime, end: dt.datetime
) -> tuple[dict[str, list[float]], int]:
    values: dict[str, list[float]] = {}
    calls = 0
    for first in range(0, len(queries), MAX_QUERIES_PER_CALL):
        request: dict[str, Any] = {
            "MetricDataQueries": queries[first : first + MAX_QUERIES_PER_CALL],
            "StartTime": start,
            "EndTime": end,
            "ScanBy": "TimestampDescending",
        }
        while True:
            with _mapped():
                page = client.get_metric_data(**request)
            calls += 1
            for result in page.get("MetricDataResults", []):
                values.setdefault(result["Id"], []).extend(float(v) for v in result.get("Values", []))
            if not page.get("NextToken"):
                break
            request["NextToken"] = page["NextToken"]
    return values, calls


def read_sums(
    client: Any,
    metrics: dict[str, tuple[str, str, dict[str, str]]],
    window_seconds: int,
    now: dt.datetime | None = None,
) -> dict[str, float]:
    """The Sum over the last ``window_seconds`` of each metric (id → namespace, name,
    dimensions); a metric with no datapoint is left out."""
    end = now or dt.datetime.now(dt.timezone.utc)
    period = max(SQS_PERIOD_SECONDS, math.ceil(window_seconds / 60) * 60)
    start = end - dt.timedelta(seconds=period)
    queries = [
        _stat(query_id, namespace, metric, dimensions, period, "Sum")
        for query_id, (namespace, metric, dimensions) in metrics.items()
    ]
    values, _ = _get(client, queries, start, end)
    return {query_id: sum(found) for query_id, found in values.items() if found}
