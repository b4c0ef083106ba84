"""Trace context across ``.delay()``: envelope version 4 only when there is a trace, the
trace id on the run's log lines, passed on by tasks that send tasks, and OpenTelemetry spans
that link send and run."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from cloudq import CloudQ, Message
from cloudq.core.errors import ConfigurationError
from cloudq.runtime.logs import JsonFormatter, TaskContext
from cloudq.testing import drain
from cloudq.tracing import trace_context, trace_id


class Lines(logging.Handler):
    """The JSON lines a worker would write (``--log-format json``)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, Any]] = []
        self.addFilter(TaskContext())
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def lines() -> Any:
    handler = Lines()
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)  # setLevel, not .level: loggers cache what is enabled
    yield handler.lines
    root.removeHandler(handler)
    root.setLevel(level)


def traced_app() -> CloudQ:
    app = CloudQ("traced", broker="memory://", backend="memory://")

    @app.task(name="child")
    def child() -> str:
        logging.getLogger("tests.child").info("child runs")
        return "done"

    @app.task(name="parent")
    def parent() -> str:
        logging.getLogger("tests.parent").info("parent runs")
        return app.tasks["child"].delay().id

    return app


def bodies(app: CloudQ, queue: str = "default") -> list[dict[str, Any]]:
    received = app.transport.receive(queue, 10, wait_seconds=0)
    for message in received:
        app.transport.change_visibility(queue, message.receipt_handle, 0)
    return [json.loads(message.body) for message in received]


def test_a_message_without_a_trace_stays_version_1() -> None:
    app = traced_app()
    app.tasks["child"].delay()
    [body] = bodies(app)
    assert body["v"] == 1 and "traceparent" not in body


def test_a_message_sent_in_a_trace_is_version_4_and_carries_it() -> None:
    app = traced_app()
    with trace_context() as traceparent:
        app.tasks["child"].delay()
    [body] = bodies(app)
    assert body["v"] == 4
    assert trace_id(body["traceparent"]) == trace_id(traceparent)
    # a replay keeps the trace (the highest version of the fields it carries)
    replayed = Message.decode(json.dumps(body)).replayed(3, "Boom: once")
    assert replayed.v == 4 and replayed.traceparent == body["traceparent"]


def test_the_trace_id_reaches_the_log_lines_of_the_run_and_of_tasks_it_sends(lines: Any) -> None:
    # Given a task sent within a trace, which sends another task
    app = traced_app()
    incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with trace_context(incoming):
        parent = app.tasks["parent"].delay()
    # When both run
    drain(app)
    child_id = parent.get(timeout=1)
    assert app.AsyncResult(child_id).get(timeout=1) == "done"
    # Then the tasks' own lines and the outcome lines of both carry the trace id
    traced = [line for line in lines if line.get("trace_id") == "4bf92f3577b34da6a3ce929d0e0e4736"]
    assert {line["message"] for line in traced} >= {"parent runs", "child runs"}
    outcome_lines = [line for line in traced if "SUCCESS" in line["message"]]
    assert {line["task_id"] for line in outcome_lines} == {parent.id, child_id}


def test_a_bad_traceparent_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="not a W3C traceparent"):
        with trace_context("00-" + "0" * 32 + "-00f067aa0ba902b7-01"):
            pass


OTEL_SCRIPT = textwrap.dedent(
    """
    import json
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    from cloudq import CloudQ
    from cloudq.testing import drain

    app = CloudQ("otel", broker="memory://", backend="memory://")

    @app.task(name="add")
    def add(a: int, b: int) -> int:
        return a + b

    with trace.get_tracer("web").start_as_current_span("request"):
        result = add.delay(1, 2)
    drain(app)
    assert result.get(timeout=1) == 3
    print(json.dumps([
        {"name": s.name, "kind": s.kind.name, "trace": s.context.trace_id,
         "span": s.context.span_id, "parent": s.parent.span_id if s.parent else None}
        for s in exporter.get_finished_spans()
    ]))
    """
)


def test_with_opentelemetry_the_send_and_run_spans_link_up() -> None:
    # In a process of its own: a tracer provider is global to a process.
    done = subprocess.run([sys.executable, "-c", OTEL_SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    spans = {span["name"]: span for span in json.loads(done.stdout.splitlines()[-1])}
    request, send, run = spans["request"], spans["send add"], spans["run add"]
    assert (send["kind"], run["kind"]) == ("PRODUCER", "CONSUMER")
    assert request["trace"] == send["trace"] == run["trace"]
    assert send["parent"] == request["span"] and run["parent"] == send["span"]


def test_signatures_of_untraced_messages_are_what_cloudq_before_tracing_made() -> None:
    import hashlib
    import hmac

    from cloudq.core.errors import SignatureError

    # Given a message signed as a producer of the last release (version 1 fields only) signs it
    from cloudq.core.message import NEWER_FIELDS

    message = Message(task="add", args=[1, 2])
    before = message.model_dump(mode="json", exclude={"signature", *NEWER_FIELDS})
    canonical = json.dumps(before, sort_keys=True, separators=(",", ":")).encode()
    old_signature = hmac.new(b"key", canonical, hashlib.sha256).hexdigest()
    # Then this cloudq verifies it (a rolling upgrade with signing keys goes on working)
    message.model_copy(update={"signature": old_signature}).verify(["key"])
    # and a traced message's signature covers its trace context
    traced = message.traced("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").signed("key")
    traced.verify(["key"])
    forged = traced.model_copy(
        update={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01"}
    )
    with pytest.raises(SignatureError):
        forged.verify(["key"])


def test_a_run_while_another_thread_still_imports_opentelemetry_traces_nothing_and_succeeds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given opentelemetry.trace half imported (another thread is importing it: the module is
    # in sys.modules, its names not yet), as a library's lazy import did on a Lambda cold start
    import importlib.machinery
    import types

    half = types.ModuleType("opentelemetry.trace")
    half.__spec__ = importlib.machinery.ModuleSpec("opentelemetry.trace", None)
    half.__spec__._initializing = True  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", half)
    app = traced_app()
    # When a task is sent and run
    result = app.tasks["child"].delay()
    drain(app)
    # Then it ran, untraced, instead of failing on the module's missing names
    assert result.get(timeout=1) == "done"
