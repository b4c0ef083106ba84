"""How a worker stops, what a web request pays when the broker is down, and how much a
worker logs per task.

    .venv/bin/python bench/bench_stop.py [--runs 3] [--tasks 50]

On one ministack server, with real ``cloudq worker`` processes of the app below:

- idle stop: seconds from SIGTERM to exit of an idle worker 0.5 s into a long poll of the
  default wait (``WORKER_WAIT_SECONDS``), about the worst case: the stop waits for the poll;
- second signal: seconds from a second signal to exit while a 30 s task runs;
- ``.delay()`` with the broker unreachable, default send settings: against a closed port
  (connection refused) and a port that accepts and never answers (a hung endpoint), each
  from a fresh app (its queue URL not yet known);
- log lines per task at INFO: ``tasks`` successful no-op tasks, lines written while draining.

Medians of ``runs``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cloudq import CloudQ  # noqa: E402
from cloudq.core.config import WORKER_WAIT_SECONDS  # noqa: E402
from cloudq.core.errors import TransportError  # noqa: E402

app = CloudQ(os.environ.get("BENCH_STOP_APP", "stop"), backend=None)


@app.task(name="noop")
def noop() -> None:
    return None


@app.task(name="sleep")
def sleep(seconds: float) -> None:
    time.sleep(seconds)


def _worker(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "cloudq", "worker", "bench.bench_stop:app", "-Q", "default", *args]
    with open(log, "ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def _wait_for(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.02)


def idle_stop(env: dict[str, str], folder: Path) -> float:
    log = folder / f"idle-{uuid.uuid4().hex[:6]}.log"
    worker = _worker(env, log, "--wait", f"{WORKER_WAIT_SECONDS:g}")
    _wait_for(lambda: "cloudq worker:" in log.read_text())
    time.sleep(0.5)
    worker.send_signal(signal.SIGTERM)
    started = time.monotonic()
    worker.wait(timeout=60)
    return time.monotonic() - started


def second_signal(env: dict[str, str], folder: Path, bench_app: CloudQ) -> float:
    log = folder / f"second-{uuid.uuid4().hex[:6]}.log"
    worker = _worker(env, log, "--grace", "60", "--wait", "1", "--visibility-timeout", "60")
    running_before = bench_app.transport.stats("default").in_flight  # earlier runs' tasks
    bench_app.tasks["sleep"].delay(30.0)
    _wait_for(lambda: bench_app.transport.stats("default").in_flight > running_before)
    worker.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    worker.send_signal(signal.SIGTERM)
    started = time.monotonic()
    worker.wait(timeout=60)
    return time.monotonic() - started


def unreachable_delay(endpoint: str) -> float:
    fresh = CloudQ("unreachable", broker=f"sqs://?endpoint_url={endpoint}", backend=None)
    fresh.task(name="noop")(noop.fn)
    fresh.transport.describe()
    started = time.monotonic()
    try:
        fresh.tasks["noop"].delay()
    except TransportError:
        return time.monotonic() - started
    raise AssertionError("the send to an unreachable broker succeeded")


def lines_per_task(env: dict[str, str], folder: Path, bench_app: CloudQ, tasks: int) -> float:
    log = folder / f"lines-{uuid.uuid4().hex[:6]}.log"
    worker = _worker(env, log, "--wait", "1")
    _wait_for(lambda: "cloudq worker:" in log.read_text())
    before = len(log.read_text().splitlines())
    for _ in range(tasks):
        bench_app.tasks["noop"].delay()
    _wait_for(lambda: log.read_text().count("SUCCESS") >= tasks, 60)
    time.sleep(0.5)
    lines = len(log.read_text().splitlines()) - before
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=30)
    return lines / tasks


def main() -> None:
    from cloudq.infra import app_resources
    from cloudq_emulator.provision import provision
    from cloudq_emulator.server import MinistackServer

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=50)
    options = parser.parse_args()
    closed = socket.create_server(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # nothing listens here: connection refused
    hung = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never answers
    hung_port = hung.getsockname()[1]
    with MinistackServer() as server, tempfile.TemporaryDirectory() as folder:
        os.environ.update(server.environment())
        name = f"stop{uuid.uuid4().hex[:8]}"
        os.environ["BENCH_STOP_APP"] = name
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        bench_app = CloudQ(name, backend=None)
        for task in (noop, sleep):
            bench_app.task(name=task.name)(task.fn)
        provision(app_resources(bench_app))
        here = Path(folder)
        idle = [idle_stop(env, here) for _ in range(options.runs)]
        second = [second_signal(env, here, bench_app) for _ in range(options.runs)]
        refused = [unreachable_delay(f"http://127.0.0.1:{closed_port}") for _ in range(options.runs)]
        silent = [unreachable_delay(f"http://127.0.0.1:{hung_port}") for _ in range(options.runs)]
        lines = lines_per_task(env, here, bench_app, options.tasks)
    hung.close()
    print(f"\nstop and send path — medians of {options.runs} runs")
    idle_target = f"(target ≤ {WORKER_WAIT_SECONDS + 1:g}: the wait + 1)"
    print(f"  idle worker, SIGTERM → exit          {statistics.median(idle):6.2f} s  {idle_target}")
    print(f"  second signal → exit, task running   {statistics.median(second):6.2f} s  (target ≤ 0.5)")
    print(f"  .delay(), broker port closed → raises{statistics.median(refused):6.2f} s  (target ≤ 3)")
    print(f"  .delay(), broker hung → raises       {statistics.median(silent):6.2f} s  (target ≤ 3)")
    print(f"  worker log lines per task at INFO    {lines:6.2f}     ({options.tasks} tasks)")


if __name__ == "__main__":
    main()
