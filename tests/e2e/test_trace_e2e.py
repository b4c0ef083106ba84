"""A trace id set in the producer (this test process) reaches a real worker process: its log
line for the task, and its OpenTelemetry span for the run."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from cloudq import CloudQ
from cloudq.tracing import trace_context, trace_id
from tests.e2e.conftest import WorkerFactory
from tests.processes import wait_until, worker_log


def test_the_producers_trace_id_is_on_the_workers_log_line_and_span(
    e2e_app: CloudQ, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    # Given a worker logging JSON, with OpenTelemetry's SDK writing its spans to a file
    spans_file = tmp_path / "spans.jsonl"
    worker = start_worker("--log-format", "json", env={"CLOUDQ_TEST_OTEL_SPANS": str(spans_file)})
    # When this process sends a task within a trace
    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with trace_context(incoming):
        result = e2e_app.tasks["add"].delay(2, 3)
    assert result.get(timeout=30) == 5
    assert wait_until(lambda: spans_file.exists() and "run add" in spans_file.read_text(), 10)
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=15)
    expected = trace_id(incoming)
    # Then the worker's line for the task carries the trace id
    lines = [json.loads(line) for line in worker_log(tmp_path).splitlines() if line.startswith("{")]
    [line] = [line for line in lines if line.get("task_id") == result.id]
    assert line["trace_id"] == expected and "SUCCESS" in line["message"]
    # and its span for the run is in that trace, a child of the message's context
    spans = [json.loads(text) for text in spans_file.read_text().splitlines()]
    [run] = [span for span in spans if span["name"] == "run add"]
    assert run["context"]["trace_id"] == f"0x{expected}"
    assert run["kind"] == "SpanKind.CONSUMER" and run["parent_id"] is not None
