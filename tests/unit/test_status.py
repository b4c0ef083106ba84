"""``cloudq status`` readings on the in-process engines: who consumes a queue, and a CloudWatch
that cannot be read shown as a note while the depths still show."""

from __future__ import annotations

import socket
import time

import pytest
from rich.console import Console

from cloudq.backends.base import Progress
from cloudq.core.errors import ConfigurationError
from cloudq.ops import status_view
from cloudq.ops.cloudwatch import cloudwatch_client
from cloudq.ops.status import RunningTask, StatusReader, read_status
from tests.tasks import make_app


def test_lambda_queues_are_consumed_by_lambda_and_the_others_by_workers() -> None:
    app = make_app("modes", broker="memory://", backend="memory://", lambda_queues=("orders.fifo",))
    app.tasks["add"].delay(1, 2)
    status = read_status(app)
    assert {(q.queue, q.mode, q.visible) for q in status.queues} == {
        ("default", "worker", 1),
        ("orders.fifo", "lambda", 0),
    }
    assert status.outcomes is None and status.outcomes_source.startswith("n/a")


def test_a_cloudwatch_that_cannot_be_read_is_a_note_and_the_depths_still_show() -> None:
    # Given CloudWatch at a port where nothing listens
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = make_app("nocw", broker="memory://", backend="memory://")
    app.tasks["add"].delay(1, 2)
    client = cloudwatch_client(f"http://127.0.0.1:{port}", "us-east-1")
    # When the status is read from it
    status = StatusReader(app, metrics="cloudwatch", cloudwatch=client).read()
    # Then the outcomes say why they are missing, and the queues are there
    assert status.outcomes is None
    assert status.outcomes_source.startswith("n/a: CloudWatch unreachable")
    assert [q.visible for q in status.queues if q.queue == "default"] == [1]


def test_an_unknown_metrics_source_is_refused() -> None:
    app = make_app("bad", broker="memory://", backend="memory://")
    with pytest.raises(ConfigurationError, match="metrics source 'prometheus'"):
        StatusReader(app, metrics="prometheus")


def test_cloudwatch_is_read_again_only_after_the_interval(moto_aws: object) -> None:
    """A live page refreshing every 2 s reads CloudWatch (billed per metric) once a minute."""
    import datetime as dt

    import boto3

    from cloudq.clock import ManualClock

    app = make_app("cached", broker="memory://", backend="memory://")
    client = boto3.client("cloudwatch", region_name="us-east-1")
    clock = ManualClock()
    reader = StatusReader(
        app, metrics="cloudwatch", cloudwatch=client, metrics_interval_seconds=60, clock=clock
    )

    def put_success() -> None:
        dimensions = [
            {"Name": n, "Value": v} for n, v in (("App", "cached"), ("Queue", "default"), ("Task", "add"))
        ]
        client.put_metric_data(
            Namespace="cloudq",
            MetricData=[
                {
                    "MetricName": "TaskSucceeded",
                    "Dimensions": dimensions,
                    "Value": 1.0,
                    "Timestamp": dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=2),
                }
            ],
        )

    def succeeded() -> int:
        outcomes, _ = reader.outcomes()
        assert outcomes is not None
        return next(row.succeeded for row in outcomes if row.task == "add")

    put_success()
    assert succeeded() == 1
    # When another run lands within the minute, the kept reading is shown
    put_success()
    assert succeeded() == 1 and reader.read().outcomes is not None
    # and after it, CloudWatch is read again
    clock.advance(61)
    assert succeeded() == 2


def test_the_progress_of_running_tasks_shows_where_the_backend_lists_them() -> None:
    # Given a task running on the memory engines that reported its progress
    app = make_app("running", broker="memory://", backend="memory://")
    backend, now = app.backend, time.time()
    assert backend is not None
    backend.claim("t1", "progressing", "w1", 60, now)
    backend.put_progress("t1", "w1", Progress(done=1, total=4, message="one"), now)
    # When the status is read and drawn
    status = read_status(app)
    # Then it lists the run and its progress
    assert status.running == [RunningTask("t1", "progressing", 1.0, 4.0, "one")]
    console = Console(width=140, record=True)
    console.print(status_view.render(status))
    drawn = console.export_text()
    assert "t1" in drawn and "progressing" in drawn and "one" in drawn


def test_without_a_result_backend_the_progress_is_not_available() -> None:
    status = read_status(make_app("nobackend", broker="memory://", backend=None))
    assert (status.running, status.running_source) == (None, "n/a: no result backend")
