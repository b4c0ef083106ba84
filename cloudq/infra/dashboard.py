"""The app's CloudWatch dashboard: the EMF task metrics (``cloudq.runtime.metrics``) and each queue's
SQS metrics, and the Lambda worker's (when the app has one), one template resource.

Task metrics are found by SEARCH expressions on the app's dimension value, so tasks added later
appear without a new deployment; queues are named from the model.
"""

from __future__ import annotations

import json

from cloudq.infra.intrinsics import Template, sub
from cloudq.infra.model import Resources
from cloudq.runtime.metrics import COUNT_METRICS, DIMENSIONS, DURATION_METRIC, NAMESPACE, QUEUE_WAIT_METRIC

WIDTH, HEIGHT = 12, 6
PERIOD_SECONDS = 60
LAMBDA_COUNT_METRICS = ("Invocations", "Errors", "Throttles")
SQS_DEPTH_METRICS = ("ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible")


def _search(app: str, metric: str, stat: str) -> str:
    schema = ",".join((NAMESPACE, *DIMENSIONS))
    return f"SEARCH('{{{schema}}} App=\"{app}\" MetricName=\"{metric}\"', '{stat}', {PERIOD_SECONDS})"


def _widget(index: int, title: str, metrics: list[list[object]], stat: str) -> Template:
    return {
        "type": "metric",
        "x": (index % 2) * WIDTH,
        "y": (index // 2) * HEIGHT,
        "width": WIDTH,
        "height": HEIGHT,
        "properties": {
            "title": title,
            "view": "timeSeries",
            "region": "${AWS::Region}",
            "stat": stat,
            "period": PERIOD_SECONDS,
            "metrics": metrics,
        },
    }


def _expressions(app: str, metrics: list[tuple[str, str]], stat: str) -> list[list[object]]:
    return [
        [{"expression": _search(app, metric, stat), "id": f"e{index}", "label": label}]
        for index, (metric, label) in enumerate(metrics)
    ]


def widgets(resources: Resources) -> list[Template]:
    app = resources.app
    counts = [(metric, metric.removeprefix("Task").lower()) for metric in COUNT_METRICS.values()]
    found = [
        _widget(0, "Task outcomes per minute", _expressions(app, counts, "Sum"), "Sum"),
        _widget(1, "Task duration p95 (ms)", _expressions(app, [(DURATION_METRIC, "p95")], "p95"), "p95"),
        _widget(2, "Queue wait p95 (ms)", _expressions(app, [(QUEUE_WAIT_METRIC, "p95")], "p95"), "p95"),
    ]
    depth: list[list[object]] = []
    age: list[list[object]] = []
    dead: list[list[object]] = []
    for queue in resources.queues:
        depth += [["AWS/SQS", metric, "QueueName", queue.name] for metric in SQS_DEPTH_METRICS]
        age.append(["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", queue.name])
        dead.append(["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", queue.dead_letter_name])
    found += [
        _widget(3, "Queue depth (visible, not visible)", depth, "Maximum"),
        _widget(4, "Age of the oldest message (s)", age, "Maximum"),
        _widget(5, "Dead letters", dead, "Maximum"),
    ]
    if resources.function is not None:
        name = resources.function.function_name
        calls: list[list[object]] = [
            ["AWS/Lambda", metric, "FunctionName", name] for metric in LAMBDA_COUNT_METRICS
        ]
        found += [
            _widget(6, f"Lambda {name}: invocations, errors, throttles", calls, "Sum"),
            _widget(
                7,
                f"Lambda {name}: duration p95 (ms)",
                [["AWS/Lambda", "Duration", "FunctionName", name]],
                "p95",
            ),
        ]
    return found


def dashboard(resources: Resources) -> Template:
    """The ``Dashboard`` resource (``Fn::Sub`` puts the stack's region in the body)."""
    body = json.dumps({"widgets": widgets(resources)}, separators=(",", ":"))
    return {
        "Dashboard": {
            "Type": "AWS::CloudWatch::Dashboard",
            "Properties": {"DashboardName": resources.dashboard_name, "DashboardBody": sub(body)},
        }
    }
