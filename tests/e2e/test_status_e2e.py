"""``cloudq status`` against real engines: a scripted situation (N queued, M not visible, one
delayed, K dead-lettered by a failing task) reported right on ministack and on Redis, the live
view through a pseudo-terminal, and recent outcomes read back from a CloudWatch API."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from typing import Any

import boto3
import pytest

from cloudq import CloudQ
from cloudq.backends.base import Progress, State
from cloudq.runtime.metrics import emf_line
from cloudq.testing import drain
from tests.processes import wait_until

QUEUED, NOT_VISIBLE = 5, 2


def cloudq(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cloudq", *args], capture_output=True, text=True, timeout=60)


def script_situation(app: CloudQ) -> None:
    """One failing task dead-lettered (after its retries), then N+M tasks queued of which M
    are received and held (as a worker running them would), and one delayed."""
    app.tasks["always_fails"].delay("status")
    drain(app, ["default"], raise_failures=False)
    for i in range(QUEUED + NOT_VISIBLE):
        app.tasks["add"].delay(i, i)
    app.tasks["add"].apply_async((0, 0), countdown=120)
    held: list[Any] = []
    assert wait_until(
        lambda: (
            bool(held.extend(app.transport.receive("default", NOT_VISIBLE - len(held), 1, 300)))
            or len(held) == NOT_VISIBLE
        ),
        20,
    )


def default_queue(report: dict[str, Any]) -> dict[str, Any]:
    [queue] = [queue for queue in report["queues"] if queue["queue"] == "default"]
    return queue


def test_status_json_reports_the_scripted_situation(engine_app: CloudQ) -> None:
    # Given the scripted situation, and a running task that reported its progress
    script_situation(engine_app)
    backend, now = engine_app.backend, time.time()
    assert backend is not None
    backend.claim("running-1", "progressing", "w1", 60, now, int(now) + 3600)
    assert backend.put_progress("running-1", "w1", Progress(done=2, total=3, message="step 2"), now)
    # When cloudq status --json runs
    done = cloudq("status", "--app", "tests.tasks:app", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    # Then the default queue's numbers are the scripted ones
    queue = default_queue(report)
    assert (queue["visible"], queue["not_visible"], queue["delayed"], queue["dead_letters"]) == (
        QUEUED,
        NOT_VISIBLE,
        1,
        1,
    )
    assert queue["mode"] == "worker"
    fifo = [q for q in report["queues"] if q["queue"] == "orders.fifo"][0]
    assert (fifo["visible"], fifo["not_visible"], fifo["dead_letters"]) == (0, 0, 0)
    # and the age of the oldest message comes from the queue on Redis, n/a on the emulator
    if engine_app.settings.broker.startswith("redis"):
        assert queue["oldest_age_seconds"] is not None and 0 <= queue["oldest_age_seconds"] < 120
        assert fifo["oldest_age_seconds"] is None  # empty
    else:
        assert queue["oldest_age_seconds"] is None
        assert report["oldest_age_source"].startswith("n/a")
    # and recent outcomes say where they would come from (no CloudWatch here)
    assert report["outcomes"] is None and report["outcomes_source"].startswith("n/a")
    # and the running task's progress is listed on Redis, n/a on DynamoDB (it would scan)
    if engine_app.settings.broker.startswith("redis"):
        assert report["running"] == [
            {"task_id": "running-1", "task": "progressing", "done": 2.0, "total": 3.0, "message": "step 2"}
        ]
    else:
        assert report["running"] is None
        assert "lists no running tasks without scanning the table" in report["running_source"]


def test_watch_renders_in_a_terminal(engine_app: CloudQ) -> None:
    script_situation(engine_app)
    # When cloudq status --watch runs in a pseudo-terminal
    main, child = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "LINES": "40", "TERM": "xterm-256color"}
    command = [
        sys.executable,
        "-m",
        "cloudq",
        "status",
        "--app",
        "tests.tasks:app",
        "--watch",
        "--interval",
        "1",
    ]
    # A run started in the background (``make test &``) ignores SIGINT, and a child inherits
    # that: the child gets the default back, as in a terminal, so Ctrl-C reaches it.
    process = subprocess.Popen(
        command,
        stdin=child,
        stdout=child,
        stderr=child,
        env=env,
        close_fds=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    os.close(child)
    screen = b""
    try:
        deadline = time.monotonic() + 30
        # Then it draws the table, and redraws it (two refreshes)
        while time.monotonic() < deadline and screen.count(b"Ctrl-C stops") < 2:
            ready, _, _ = select.select([main], [], [], 0.5)
            if ready:
                try:
                    screen += os.read(main, 65536)
                except OSError:
                    break
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
        os.close(main)
    text = screen.decode(errors="replace")
    assert text.count("Ctrl-C stops") >= 2, text
    assert "dead letters" in text and "default" in text and "orders.fifo" in text
    assert "\x1b[" in text  # a terminal: rich drew with escape sequences


def test_recent_outcomes_come_from_cloudwatch_metrics(
    e2e_app: CloudQ, e2e_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The EMF lines of real runs, put into the emulator's CloudWatch as CloudWatch Logs would
    extract them; ``--metrics cloudwatch`` reads them back."""
    # Given runs with metrics on: 3 successes, one task retried twice then failed
    app = CloudQ(e2e_app.name, metrics=True)
    app.tasks.update(e2e_app.tasks)
    for i in range(3):
        app.tasks["add"].delay(i, 1)
    app.tasks["always_fails"].delay("cw")
    drain(app, ["default"], raise_failures=False)
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(documents) == 6
    put_as_cloudwatch_logs_would(documents)
    # When cloudq status reads CloudWatch
    done = cloudq("status", "--app", "tests.tasks:app", "--json", "--metrics", "cloudwatch")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    # Then the outcomes are the runs'
    outcomes = {row["task"]: row for row in report["outcomes"]}
    assert (outcomes["add"]["succeeded"], outcomes["add"]["failed"]) == (3, 0)
    failing = outcomes["always_fails"]
    assert (failing["succeeded"], failing["retried"], failing["failed"]) == (0, 2, 1)
    durations = sorted(d["TaskDuration"] for d in documents if d["Task"] == "add")
    assert outcomes["add"]["p50_ms"] == pytest.approx(durations[1], rel=0.01)
    assert outcomes["echo"]["succeeded"] == 0 and outcomes["echo"]["p50_ms"] is None
    assert report["outcomes_source"].startswith("CloudWatch")


def put_as_cloudwatch_logs_would(documents: list[dict[str, Any]]) -> None:
    cloudwatch = boto3.client("cloudwatch")
    for document in documents:
        [directive] = document["_aws"]["CloudWatchMetrics"]
        [dimension_names] = directive["Dimensions"]
        dimensions = [{"Name": name, "Value": document[name]} for name in dimension_names]
        timestamp = document["_aws"]["Timestamp"] / 1000
        data = [
            {
                "MetricName": metric["Name"],
                "Dimensions": dimensions,
                "Value": float(document[metric["Name"]]),
                "Unit": metric["Unit"],
                "Timestamp": timestamp,
            }
            for metric in directive["Metrics"]
        ]
        cloudwatch.put_metric_data(Namespace=directive["Namespace"], MetricData=data)


def test_an_emf_document_names_its_dimensions() -> None:
    document = json.loads(emf_line("shop", "emails", "send", State.RETRY, 0.5, None, 0))
    assert (document["TaskRetried"], document["TaskDuration"]) == (1, 500.0)
    assert "QueueWaitTime" not in document
