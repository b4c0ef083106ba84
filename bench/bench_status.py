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
import os
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.counting_proxy import CountingProxy  # noqa: E402
from bench.run import cloudq_drain  # noqa: E402
from cloudq import CloudQ  # noqa: E402
from cloudq.infra import app_resources  # noqa: E402
from cloudq.status import StatusReader  # noqa: E402
from cloudq_emulator.provision import provision  # noqa: E402
from cloudq_emulator.server import MinistackServer  # noqa: E402


def make_app(name: str, **settings: object) -> CloudQ:
    app = CloudQ(name, backend=None, wait_seconds=1, **settings)

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


def throughput(name: str, count: int, concurrency: int, metrics: bool, lines: Path) -> float:
    app = make_app(f"{name}{'on' if metrics else 'off'}", metrics=metrics)
    provision(app_resources(app))
    with lines.open("a") as out, contextlib.redirect_stdout(out):
        return count / cloudq_drain(app, count, concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    server = MinistackServer()
    server.start()
    proxy = CountingProxy(server.endpoint_url).start()
    os.environ.update(server.environment())
    os.environ["AWS_ENDPOINT_URL"] = proxy.endpoint_url
    try:
        app = make_app(f"status{uuid.uuid4().hex[:6]}")
        provision(app_resources(app))
        queues = len(app.queue_names())
        rows = []
        for metrics, label in (("cloudwatch", "with CloudWatch (AWS)"), ("auto", "without (emulator)")):
            first, refresh = status_calls(proxy, app.name, metrics)
            rows.append((f"cloudq status, {queues} queues, {len(app.tasks)} tasks, {label}", first))
            rows.append(("  one --watch refresh", refresh))
        on, off = [], []
        with tempfile.TemporaryDirectory() as folder:
            lines = Path(folder) / "emf.jsonl"
            for round_number in range(args.rounds):
                name = f"tp{uuid.uuid4().hex[:6]}r{round_number}"
                # Alternate which goes first: the machine's load drifts between runs.
                for metrics in (False, True) if round_number % 2 == 0 else (True, False):
                    rate = throughput(name, args.tasks, args.concurrency, metrics, lines)
                    (on if metrics else off).append(rate)
            emitted = sum(1 for _ in lines.open())
        assert emitted == args.tasks * args.rounds, emitted
        rows.append(
            (
                f"worker, metrics off (-c {args.concurrency}, median of {args.rounds})",
                f"{statistics.median(off):,.0f} tasks/s",
            )
        )
        rows.append(("worker, metrics on", f"{statistics.median(on):,.0f} tasks/s"))
        rows.append(
            (
                "  on / off",
                f"{statistics.median(on) / statistics.median(off):.2f}x  (rounds: "
                + ", ".join(f"{a / b:.2f}" for a, b in zip(on, off, strict=True))
                + ")",
            )
        )
        width = max(len(label) for label, _ in rows)
        print(f"\nmonitoring costs ({args.tasks} tasks per round)")
        for label, value in rows:
            print(f"  {label:<{width}}  {value}")
    finally:
        proxy.stop()
        server.stop()


if __name__ == "__main__":
    main()
