"""What monitoring costs (ministack server, calls counted at the HTTP level by a proxy).

    .venv/bin/python bench/bench_status.py --tasks 2000

1. AWS calls made by one ``cloudq status`` (the first reading resolves queue URLs) and by one
   ``--watch`` refresh, with CloudWatch read (as on AWS) and without (the emulator's default).
2. Worker throughput with EMF metrics on vs off (results off, where the per-task overhead is
   the largest share), several alternating rounds; the EMF lines go to a file, as stdout
   would to a log shipper.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.counting_proxy import CountingProxy, counted_emulator  # noqa: E402
from cloudq import CloudQ  # noqa: E402
from cloudq.infra import app_resources  # noqa: E402
from cloudq.ops.status import StatusReader  # noqa: E402
from cloudq.transports import OutgoingMessage  # noqa: E402
from cloudq.worker import Worker  # noqa: E402
from cloudq_emulator.provision import provision  # noqa: E402


def make_app(name: str, **settings: object) -> CloudQ:
    app = CloudQ(name, backend=None, wait_seconds=1, **settings)  # type: ignore[arg-type]

    @app.task(name="noop")
    def noop() -> None:
        return None

    @app.task(name="send_email", queue="emails")
    def send_email(to: str) -> str:
        return to

    return app


def status_calls(proxy: CountingProxy, name: str, metrics: str) -> tuple[str, str]:
    """Calls of a first reading (a fresh process: queue URLs not resolved yet) and of a refresh."""
    reader = StatusReader(make_app(name), metrics=metrics)
    proxy.reset()
    reader.read()
    first = proxy.reset()
    reader.read()
    refresh = proxy.reset()
    return _calls(first), _calls(refresh)


def _calls(calls: dict[str, int]) -> str:
    parts = ", ".join(f"{name.split('.')[-1]} {count}" for name, count in sorted(calls.items()))
    return f"{sum(calls.values())} ({parts})"


def drain_once(app: CloudQ, count: int, concurrency: int) -> tuple[float, float]:
    """Wall seconds, and this process's CPU seconds, for one worker to run ``count`` queued
    no-op tasks. CPU time is what the metrics add; wall time also carries the shared
    machine's load."""
    body = '{"v":1,"id":"00000000-0000-0000-0000-000000000000","task":"noop"}'
    for start in range(0, count, 10):
        app.transport.send("default", [OutgoingMessage(body)] * min(10, count - start))
    worker = Worker(app, ["default"], concurrency=concurrency, wait_seconds=1)
    wall, cpu = time.perf_counter(), time.process_time()
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    while worker.stats.acked < count:
        time.sleep(0.005)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    worker.stop()
    thread.join()
    return wall, cpu


def throughput(broker: str, count: int, concurrency: int, rounds: int, lines: Path) -> list[str]:
    """Rows: tasks per wall second and per CPU second, metrics off and on (medians), alternating
    which goes first in each round (the machine's load drifts)."""
    found: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for round_number in range(rounds):
        for metrics in (False, True) if round_number % 2 == 0 else (True, False):
            app = make_app(f"tp{uuid.uuid4().hex[:8]}", metrics=metrics, broker=broker)
            if broker.startswith("sqs"):
                provision(app_resources(app))
            with lines.open("a") as out, contextlib.redirect_stdout(out):
                wall, cpu = drain_once(app, count, concurrency)
            found[metrics].append((count / wall, count / cpu))
    rows = []
    medians = {}
    for metrics, rates in found.items():
        medians[metrics] = (statistics.median(r[0] for r in rates), statistics.median(r[1] for r in rates))
        label = f"  metrics {'on' if metrics else 'off'}"
        rows.append(
            (label, f"{medians[metrics][0]:,.0f} tasks/s, {medians[metrics][1]:,.0f} tasks per CPU s")
        )
    wall_ratio = medians[True][0] / medians[False][0]
    cpu_ratio = medians[True][1] / medians[False][1]
    spread = ", ".join(f"{on[0] / off[0]:.2f}" for on, off in zip(found[True], found[False], strict=True))
    rows.append(("  on / off", f"{wall_ratio:.2f}x wall (rounds {spread}), {cpu_ratio:.2f}x per CPU s"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    with counted_emulator() as proxy:
        app = make_app(f"status{uuid.uuid4().hex[:6]}")
        provision(app_resources(app))
        queues = len(app.queue_names())
        rows = []
        for metrics, label in (("cloudwatch", "with CloudWatch (AWS)"), ("auto", "without (emulator)")):
            first, refresh = status_calls(proxy, app.name, metrics)
            rows.append((f"cloudq status, {queues} queues, {len(app.tasks)} tasks, {label}", first))
            rows.append(("  one --watch refresh", refresh))
        with tempfile.TemporaryDirectory() as folder:
            lines = Path(folder) / "emf.jsonl"
            for broker, label in (
                ("memory://", "in-process memory:// (CPU-bound)"),
                ("sqs://", "SQS on ministack"),
            ):
                rows.append((f"worker -c {args.concurrency}, {label}, median of {args.rounds}", ""))
                rows += throughput(broker, args.tasks, args.concurrency, args.rounds, lines)
            emitted = sum(1 for _ in lines.open())
        assert emitted == 2 * args.tasks * args.rounds, emitted
        width = max(len(label) for label, _ in rows)
        print(f"\nmonitoring costs ({args.tasks} tasks per round)")
        for label, value in rows:
            print(f"  {label:<{width}}  {value}")


if __name__ == "__main__":
    main()
