"""Tasks used by the tests. ``make_app`` registers them all on a fresh app, so each test
gets its own engines; ``app`` (configured from CLOUDQ_* variables) is what worker processes
in e2e and chaos tests load as ``tests.tasks:app``."""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from cloudq import CloudQ, SoftTimeLimitExceeded, Task


class Point(BaseModel):
    x: int
    y: int


class FlakyError(Exception):
    pass


def _record(name: str, value: str) -> None:
    """Append a line to $CLOUDQ_TEST_LOG_DIR/<name> (side effects tests can count)."""
    folder = os.environ.get("CLOUDQ_TEST_LOG_DIR")
    if folder:
        with open(Path(folder) / name, "a") as log:
            log.write(value + "\n")


def _counted(key: str, seconds: float) -> list[float]:
    """Run ``seconds`` counted in Redis under ``key`` ($CLOUDQ_TEST_REDIS): how many ran at
    once as this one started (itself included), its start and its end (epoch seconds), and
    1 on a Lambda function (0 on a worker)."""
    import redis

    client = redis.Redis.from_url(os.environ.get("CLOUDQ_TEST_REDIS", "redis://127.0.0.1:6379/0"))
    started = time.time()
    at_once = int(client.incr(key))
    try:
        time.sleep(seconds)
    finally:
        client.decr(key)
    return [at_once, started, time.time(), float("AWS_LAMBDA_FUNCTION_NAME" in os.environ)]


def make_app(name: str = "tests", **settings: Any) -> CloudQ:
    app = CloudQ(name, **settings)

    @app.task(name="add")
    def add(a: int, b: int) -> int:
        return a + b

    @app.task(name="echo")
    def echo(value: Any = None) -> Any:
        return value

    @app.task(name="typed")
    def typed(when: dt.datetime, key: uuid.UUID, amount: Decimal, point: Point) -> dict[str, str]:
        assert isinstance(when, dt.datetime) and isinstance(key, uuid.UUID)
        assert isinstance(amount, Decimal) and isinstance(point, Point)
        return {"when": when.isoformat(), "key": str(key), "amount": str(amount), "x": str(point.x)}

    @app.task(name="when")
    def when(moment: dt.datetime) -> dt.datetime:
        return moment + dt.timedelta(days=1)

    @app.task(name="always_fails", max_retries=2, retry_delay=0.0, retry_jitter=False)
    def always_fails(tag: str = "") -> None:
        _record("always_fails", tag)
        raise FlakyError(f"failing on purpose {tag}")

    @app.task(name="not_retried", autoretry_for=(FlakyError,), max_retries=5)
    def not_retried() -> None:
        raise KeyError("not retryable")

    @app.task(name="retry_once", bind=True, max_retries=3)
    def retry_once(self: Task[Any, Any], countdown: float = 0) -> int:
        if self.request.attempt == 1:
            raise self.retry(countdown=countdown)
        return self.request.attempt

    @app.task(name="record")
    def record(tag: str) -> str:
        _record("record", tag)
        return tag

    @app.task(name="sleep")
    def sleep(seconds: float, tag: str = "") -> str:
        _record("sleep", tag)
        time.sleep(seconds)
        return tag

    @app.task(name="once", bind=True)
    def once(self: Task[Any, Any], seconds: float) -> str:
        """An idempotent task: its side effect is keyed by its task id (an exclusive create of
        ``once/<task id>``), so a rerun after a crash does not repeat it. Each run is logged."""
        _record("once-runs", self.request.id)
        time.sleep(seconds)
        folder = os.environ.get("CLOUDQ_TEST_LOG_DIR")
        if folder:
            effects = Path(folder) / "once"
            effects.mkdir(exist_ok=True)
            try:
                os.close(os.open(effects / self.request.id, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass  # done by an earlier run of this task id: nothing to repeat
        return self.request.id

    @app.task(name="overrun", timeout=1, max_retries=1)
    def overrun(seconds: float, tag: str = "") -> str:
        _record("overrun", tag)
        app.clock.sleep(seconds)  # a ManualClock's moves at once
        return tag

    @app.task(name="hang", timeout=1, max_retries=0)
    def hang(tag: str = "") -> None:
        _record("hang", f"{tag} {os.getpid()}")
        time.sleep(3600)

    @app.task(name="pid")
    def pid(seconds: float = 0) -> int:
        time.sleep(seconds)
        return os.getpid()

    @app.task(name="ordered", queue="orders.fifo", bind=True, max_retries=3, retry_delay=0.0)
    def ordered(self: Task[Any, Any], tag: str, fail_first: bool = False) -> str:
        _record("ordered", f"{tag}#{self.request.attempt}")
        if fail_first and self.request.attempt == 1:
            raise FlakyError(f"first run of {tag} fails on purpose")
        return tag

    @app.task(name="started_at")
    def started_at() -> float:
        """When this run started (epoch seconds): tests of eta precision measure it here."""
        return time.time()

    @app.task(name="noop")
    def noop() -> None:
        return None

    @app.task(name="start_time")
    def start_time() -> float:
        """The moment it started (``time.time()``): how long its message waited, to the sender."""
        return time.time()

    @app.task(name="echo_logged")
    def echo_logged(value: str) -> str:
        _record("echo_logged", "ran")
        return value

    @app.task(name="until_fixed", max_retries=0)
    def until_fixed(tag: str = "") -> str:
        """Fails (straight to the dead-letter queue) until $CLOUDQ_TEST_LOG_DIR/fixed exists:
        a bug fixed, then its dead letters replayed."""
        _record("until_fixed", tag)
        if not (Path(os.environ.get("CLOUDQ_TEST_LOG_DIR", "/nonexistent")) / "fixed").exists():
            raise FlakyError(f"not fixed yet {tag}")
        return f"fixed {tag}"

    @app.task(name="fails_loudly", max_retries=0)
    def fails_loudly(length: int) -> None:
        raise ValueError("e" * length)

    @app.task(name="returns_object")
    def returns_object() -> Any:
        return object()

    _register_workflow_tasks(app)
    _register_celery_tasks(app)
    _register_flow_tasks(app)
    schedule = os.environ.get("CLOUDQ_TEST_PERIODIC")  # seconds (cloudq beat only) or rate(…)
    if schedule:
        app.add_periodic(
            record, int(schedule) if schedule.isdigit() else schedule, args=["tick"], name="ticker"
        )
    return app


def _register_celery_tasks(app: CloudQ) -> None:
    """Tasks under the names a Celery project gives them (``proj.tasks``), for the messages a
    real Celery producer sends (issue 25)."""

    @app.task(name="proj.tasks.add")
    def celery_add(x: int, y: int) -> int:
        _record("celery_add", f"{x}+{y}")
        return x + y

    @app.task(name="proj.tasks.lineage", bind=True)
    def lineage(self: Task[Any, Any]) -> list[Any]:
        return [self.request.id, self.request.root_id, self.request.parent_id, self.request.attempt]

    @app.task(name="proj.tasks.flaky", max_retries=2, retry_delay=0.0, retry_jitter=False)
    def flaky(tag: str) -> None:
        _record("celery_flaky", tag)
        raise FlakyError(f"failing on purpose {tag}")

    @app.task(name="proj.tasks.fails", max_retries=0)
    def fails(text: str) -> None:
        raise ValueError(text)

    @app.task(name="proj.tasks.count_run")
    def count_run(tag: str, seconds: float = 0) -> str:
        """Counts its runs in Redis key ``runs:<tag>`` (what a queue's move must not change)."""
        import redis

        time.sleep(seconds)
        redis.Redis.from_url("redis://127.0.0.1:6379/0").incr(f"runs:{tag}")
        return "cloudq"


def _register_flow_tasks(app: CloudQ) -> None:
    """Tasks under flow control (docs/guides/flow-control.md): each returns when it ran, on the
    app's clock."""

    @app.task(name="limited", rate_limit="100/m", rate_burst=100, max_retries=0)
    def limited(tag: str = "") -> float:
        return app.clock.time()

    @app.task(name="paced", rate_limit="10/s", rate_key="customer", max_retries=0)
    def paced(customer: str, tag: str = "") -> float:
        return app.clock.time()

    @app.task(name="fleet_paced", rate_limit="50/s", max_retries=0)
    def fleet_paced(tag: str = "") -> float:
        """``bench/bench_flow.py``: when it ran (epoch seconds), across worker processes."""
        return time.time()

    @app.task(name="capped", max_concurrency=1, max_retries=0)
    def capped(seconds: float = 0) -> float:
        app.clock.sleep(seconds)
        return app.clock.time()

    @app.task(name="progressing", bind=True, max_retries=0)
    def progressing(self: Task[Any, Any], steps: int, pause: float = 1.0) -> list[Any]:
        """Reports each step, ``pause`` seconds apart, and returns what a producer read of it
        meanwhile: the state and the progress, as JSON."""
        seen = []
        for step in range(1, steps + 1):
            self.set_progress(step, steps, message=f"step {step}")
            handle = app.AsyncResult(self.request.id)
            report = handle.progress
            seen.append([handle.state.value, None if report is None else report.model_dump()])
            app.clock.sleep(pause)
        return seen

    @app.task(name="soft_limited", bind=True, soft_timeout=5, max_retries=0)
    def soft_limited(self: Task[Any, Any], seconds: float) -> list[Any]:
        """Its deadline as seconds from its start, and what ``remaining()`` says ``seconds`` later."""
        started = app.clock.time()
        deadline = self.request.deadline
        app.clock.sleep(seconds)
        return [None if deadline is None else deadline - started, self.request.remaining()]

    @app.task(name="late_progress", bind=True, max_retries=0)
    def late_progress(self: Task[Any, Any], seconds: float) -> list[bool]:
        """Whether a report lands at its start and again ``seconds`` later (on the app's clock)."""
        landed = [self.set_progress(0)]
        app.clock.sleep(seconds)
        return [*landed, self.set_progress(1)]

    @app.task(name="bad_progress", bind=True, max_retries=0)
    def bad_progress(self: Task[Any, Any]) -> None:
        self.set_progress(float("nan"))

    @app.task(name="soft_looped", soft_timeout=1, max_retries=0)
    def soft_looped(seconds: float = 10.0) -> dict[str, Any]:
        """Loops ``seconds`` (real time) past its 1 s soft limit: when ``SoftTimeLimitExceeded``
        reached it (seconds from its start), and when its ``finally`` block ran."""
        started = time.monotonic()
        cleaned: list[float] = []
        try:
            try:
                while time.monotonic() - started < seconds:
                    time.sleep(0.01)
            finally:
                cleaned.append(time.monotonic() - started)
        except SoftTimeLimitExceeded:
            return {"raised_after": cleaned[0], "finally_ran": True}
        return {"raised_after": None, "finally_ran": bool(cleaned)}

    @app.task(name="soft_unhandled", soft_timeout=0.3, max_retries=0)
    def soft_unhandled() -> None:
        """Loops until its soft limit raises, which it leaves unhandled."""
        while True:
            time.sleep(0.01)

    @app.task(name="fleet_capped", max_concurrency=3, max_retries=0)
    def fleet_capped(seconds: float) -> list[float]:
        """Counts itself in Redis while it runs: [runs at once as it started, start, end]."""
        return _counted(f"{app.name}-running", seconds)

    @app.task(name="singleton", max_concurrency=1, max_retries=2)
    def singleton(seconds: float) -> float:
        """Runs alone across the fleet; returns when it started (epoch seconds)."""
        started = time.time()
        time.sleep(seconds)
        return started

    @app.task(name="key_capped", max_concurrency=2, concurrency_key="customer", max_retries=0)
    def key_capped(customer: str, seconds: float) -> list[float]:
        return _counted(f"{app.name}-running:{customer}", seconds)

    @app.task(name="progress_for", bind=True, max_retries=0)
    def progress_for(self: Task[Any, Any], seconds: float) -> None:
        """Reports the seconds it has run, every 0.1 s, for ``seconds``."""
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < seconds:
            self.set_progress(round(elapsed, 1), seconds)
            time.sleep(0.1)

    @app.task(name="lane_work", max_retries=0)
    def lane_work(seconds: float = 0.0) -> float:
        """Works ``seconds``; returns when it started (epoch seconds): lanes tests measure it."""
        started = time.time()
        time.sleep(seconds)
        return started

    @app.task(name="capped_per_customer", max_concurrency=2, concurrency_key="customer")
    def capped_per_customer(customer: str, seconds: float = 0) -> float:
        time.sleep(seconds)
        return app.clock.time()


def _register_workflow_tasks(app: CloudQ) -> None:
    @app.task(name="total")
    def total(values: list[int], offset: int = 0) -> int:
        """A chord callback: the sum of its members' results; each run is logged, and with
        $CLOUDQ_TEST_REDIS_COUNTER set, counted in that Redis key (an external side effect)."""
        _record("total", f"{len(values)} {sum(values) + offset}")
        counter = os.environ.get("CLOUDQ_TEST_REDIS_COUNTER")
        if counter:
            import redis

            redis.Redis.from_url("redis://127.0.0.1:6379/0").incr(counter)
        return sum(values) + offset

    @app.task(name="slow_add")
    def slow_add(a: int, b: int, seconds: float) -> int:
        time.sleep(seconds)
        _record("slow_add", f"{a} {b}")
        return a + b

    @app.task(name="timed", queue="orders.fifo")
    def timed(group: str, index: int, seconds: float) -> int:
        """Logs ``group index start end`` (for the FIFO-group overlap test)."""
        start = time.time()
        time.sleep(seconds)
        _record("timed", f"{group} {index} {start!r} {time.time()!r}")
        return index


def _spans_to_file(path: str) -> None:
    """With ``CLOUDQ_TEST_OTEL_SPANS=<file>``, a process that imports this module (a worker)
    sets up OpenTelemetry's SDK and writes each ended span to the file, one JSON per line."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

    out = open(path, "a")  # noqa: SIM115 - open for the life of the process
    exporter = ConsoleSpanExporter(out=out, formatter=lambda span: span.to_json(indent=None) + "\n")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


if os.environ.get("CLOUDQ_TEST_OTEL_SPANS"):
    _spans_to_file(os.environ["CLOUDQ_TEST_OTEL_SPANS"])
app = make_app(os.environ.get("CLOUDQ_TEST_APP", "tests"))
