"""``cloudq demo``: the whole flow on the embedded emulator, with progress and a summary.

Starts a ministack server on 127.0.0.1, deploys the example app's rendered template as a
stack (its Lambda function takes the emails), starts a real ``cloudq worker`` process, plays
a web backend that enqueues N tasks, fetches and checks every result, prints the figures, and
shuts everything down.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cloudq.app.base import CloudQ
from cloudq.app.loading import load_app
from cloudq.backends.base import State
from cloudq.infra import app_resources
from cloudq_emulator.provision import provision
from cloudq_emulator.server import MinistackServer

console = Console(stderr=False)
#: How long the demo waits for all results before calling the run failed.
RESULTS_TIMEOUT_SECONDS = 120.0


def _plan(app: CloudQ, count: int) -> list[tuple[str, tuple[Any, ...], Any]]:
    """The calls a web backend makes, with the value each must produce."""
    calls: list[tuple[str, tuple[Any, ...], Any]] = []
    names = {name.rsplit(".", 1)[-1]: name for name in app.tasks}
    for i in range(count):
        kind = i % 3
        if kind == 0:
            calls.append(
                (
                    names["update_participants"],
                    (1000 + i, 23),
                    {"event_id": 1000 + i, "participants": 23},
                )
            )
        elif kind == 1:
            calls.append((names["add"], (i, i), 2 * i))
        else:
            calls.append((names["send_welcome"], (i,), f"sent 'welcome' to user {i}"))
    return calls


@contextmanager
def _worker_process(app_reference: str, concurrency: int, env: dict[str, str]) -> Iterator[str]:
    """A real ``cloudq worker`` subprocess; SIGTERM (graceful stop) on exit."""
    log = tempfile.NamedTemporaryFile("w+", prefix="cloudq-demo-worker-", suffix=".log", delete=False)
    command = [
        sys.executable,
        "-m",
        "cloudq",
        "worker",
        app_reference,
        "-c",
        str(concurrency),
        "--wait",
        "2",
    ]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield log.name
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        if process.returncode not in (0, -signal.SIGTERM):
            console.print(f"[red]worker exited with {process.returncode}; log: {log.name}[/red]")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _enqueue(app: CloudQ, calls: list[tuple[str, tuple[Any, ...], Any]]) -> tuple[list[str], list[float]]:
    ids: list[str] = []
    latencies: list[float] = []
    with _progress() as progress:
        bar = progress.add_task("web backend: .delay()", total=len(calls))
        for name, args, _expected in calls:
            started = time.perf_counter()
            result = app.tasks[name].delay(*args)
            latencies.append(time.perf_counter() - started)
            ids.append(result.id)
            progress.advance(bar)
    return ids, latencies


def _collect(app: CloudQ, ids: list[str]) -> dict[str, Any]:
    backend = app.backend
    assert backend is not None
    done: dict[str, Any] = {}
    deadline = time.monotonic() + RESULTS_TIMEOUT_SECONDS
    with _progress() as progress:
        bar = progress.add_task("results from DynamoDB", total=len(ids))
        while len(done) < len(ids) and time.monotonic() < deadline:
            waiting = [task_id for task_id in ids if task_id not in done]
            for task_id, record in backend.get_many(waiting[:100]).items():
                if record.state.ready:
                    done[task_id] = record
            progress.update(bar, completed=len(done))
            time.sleep(0.05)
    return done


def _summary(rows: list[tuple[str, str]], ok: bool) -> None:
    table = Table(title="cloudq demo", show_header=False)
    for label, value in rows:
        table.add_row(label, value)
    console.print(table)
    console.print("[green]every result checked: OK[/green]" if ok else "[red]demo FAILED[/red]")


def _environment(server: MinistackServer, broker: str | None) -> dict[str, str]:
    env = {**os.environ, **server.environment()}
    if broker:
        env["CLOUDQ_BROKER"] = broker
    return env


def run_demo(app_reference: str, *, count: int, concurrency: int, broker: str | None) -> bool:
    """Run the demo; True when every result came back right."""
    with console.status("starting the emulator (ministack on 127.0.0.1)…"):
        server = MinistackServer()
        server.start()
    try:
        env = _environment(server, broker)
        os.environ.update(env)
        app = load_app(app_reference)
        provision(app_resources(app, app_reference), endpoint_url=server.endpoint_url)
        console.print(f"emulator at {server.endpoint_url}; app [bold]{app.name}[/bold] deployed (its stack)")
        return _play(app, app_reference, count, concurrency, env)
    finally:
        server.stop()


def _play(app: CloudQ, app_reference: str, count: int, concurrency: int, env: dict[str, str]) -> bool:
    calls = _plan(app, count)
    with _worker_process(app_reference, concurrency, env) as worker_log:
        started = time.perf_counter()
        ids, latencies = _enqueue(app, calls)
        records = _collect(app, ids)
        elapsed = time.perf_counter() - started
    wrong = [
        task_id
        for task_id, (_name, _args, expected) in zip(ids, calls, strict=True)
        if task_id not in records
        or records[task_id].state is not State.SUCCESS
        or records[task_id].value != expected
    ]
    ms = sorted(latency * 1000 for latency in latencies)
    rows = [
        ("tasks", str(count)),
        ("broker", app.settings.broker),
        (".delay() latency p50", f"{statistics.median(ms):.2f} ms"),
        (".delay() latency p95", f"{ms[int(len(ms) * 0.95) - 1]:.2f} ms"),
        ("throughput (enqueue → all results)", f"{count / elapsed:.0f} tasks/s"),
        ("results checked", f"{count - len(wrong)}/{count}"),
        ("worker log", worker_log),
    ]
    _summary(rows, ok=not wrong)
    return not wrong
