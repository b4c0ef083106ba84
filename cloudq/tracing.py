"""Trace context from ``.delay()`` to the task: a W3C ``traceparent`` in the envelope.

::

    producer   send_task ── send_span(task) ──► Message.traceparent (envelope version 4)
    worker     executor  ── run_span(task, traceparent) ──► Request.traceparent
                            └─ log records of the run and the outcome line carry trace_id

- With OpenTelemetry (the ``otel`` extra, and a tracer provider set up by the application):
  ``send <task>`` is a PRODUCER span, ``run <task>`` a CONSUMER span whose parent is the send
  span, current while the task runs (spans the task starts nest under it).
- Without it (or without a tracer provider): the trace of the task running on this thread,
  or one set with ``trace_context(...)``, is passed on with a new span id per hop, so the
  trace id still reaches the worker's log lines.
- No trace context, no field: such messages stay envelope version 1.

cloudq never imports ``opentelemetry`` itself: it traces with it once the application has
imported ``opentelemetry.trace`` (which setting up a tracer provider does).
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from cloudq.core.request import current_request
from cloudq.core.traceparent import child, is_traceparent, new_traceparent, trace_id

__all__ = ["current_traceparent", "run_span", "send_span", "trace_context", "trace_id"]

_context: contextvars.ContextVar[str | None] = contextvars.ContextVar("cloudq_traceparent", default=None)


@contextmanager
def trace_context(traceparent: str | None = None) -> Iterator[str]:
    """Send within a trace: ``traceparent`` (an incoming request's header), or a new trace.

    ``with trace_context(request.headers["traceparent"]): send_welcome.delay(42)``"""
    value = traceparent or new_traceparent()
    if not is_traceparent(value):
        from cloudq.core.errors import ConfigurationError

        raise ConfigurationError(f"not a W3C traceparent: {value!r} (00-<32 hex>-<16 hex>-<2 hex>)")
    token = _context.set(value)
    try:
        yield value
    finally:
        _context.reset(token)


def current_traceparent() -> str | None:
    """The trace context a send made now joins, without OpenTelemetry: the running task's,
    else the one of ``trace_context``."""
    request = current_request()
    if request is not None and request.traceparent is not None:
        return request.traceparent
    return _context.get()


def _otel_trace() -> Any:
    """``opentelemetry.trace`` when the application has imported it, else ``None``. Setting up
    a tracer provider imports it (``set_tracer_provider`` lives there, and the
    ``opentelemetry-instrument`` launcher imports it before the application), so an
    application that has not imported it traces nothing, and cloudq does not import it on
    its behalf (that would cost a Lambda cold start for nothing). A module another thread is
    still importing is in ``sys.modules`` half made: it counts as not imported yet (its
    names were missing: an AttributeError failed a task on a Lambda cold start)."""
    module = sys.modules.get("opentelemetry.trace")
    if module is None or getattr(getattr(module, "__spec__", None), "_initializing", False):
        return None
    return module


def _tracer() -> Any:
    """cloudq's tracer when OpenTelemetry is installed and the application has set up a tracer
    provider; ``None`` with the API's default (no-op) provider, whose spans would cost every
    task tens of microseconds for nothing."""
    otel = _otel_trace()
    if otel is None:
        return None
    provider = otel.get_tracer_provider()
    if isinstance(provider, (otel.ProxyTracerProvider, otel.NoOpTracerProvider)):
        return None
    return provider.get_tracer("cloudq")


def _format(span_context: Any) -> str:
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{int(span_context.trace_flags):02x}"


def send_span(task_name: str) -> AbstractContextManager[str | None]:
    """Around one send: yields the ``traceparent`` the message carries, or ``None``. Without
    a tracer there is no span to open: a plain value, not a generator (every ``.delay()``)."""
    tracer = _tracer()
    if tracer is None:
        return nullcontext(_child_of_current())
    return _otel_send_span(tracer, task_name)


def _child_of_current() -> str | None:
    parent = current_traceparent()
    return None if parent is None else child(parent)


@contextmanager
def _otel_send_span(tracer: Any, task_name: str) -> Iterator[str | None]:
    kind = _otel_trace().SpanKind.PRODUCER
    with tracer.start_as_current_span(f"send {task_name}", kind=kind) as span:
        if span.is_recording():  # a tracer provider is set up (not the API's no-op)
            yield _format(span.get_span_context())
            return
    yield _child_of_current()


#: The span context of a run without a trace (shared: ``nullcontext`` keeps no state).
_NO_TRACE: AbstractContextManager[str | None] = nullcontext(None)


def run_span(task_name: str, traceparent: str | None) -> AbstractContextManager[str | None]:
    """Around one run: yields the run's ``traceparent`` (its own span id), or ``None``."""
    tracer = _tracer()
    if tracer is None:  # no OpenTelemetry: no span to open, as send_span
        return _NO_TRACE if traceparent is None else nullcontext(child(traceparent))
    return _otel_run_span(tracer, task_name, traceparent)


@contextmanager
def _otel_run_span(tracer: Any, task_name: str, traceparent: str | None) -> Iterator[str | None]:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parent = TraceContextTextMapPropagator().extract({"traceparent": traceparent} if traceparent else {})
    kind = _otel_trace().SpanKind.CONSUMER
    with tracer.start_as_current_span(f"run {task_name}", context=parent, kind=kind) as span:
        if span.is_recording():  # a tracer provider is set up (not the API's no-op)
            yield _format(span.get_span_context())
            return
    yield None if traceparent is None else child(traceparent)
