"""What the visibility heartbeat costs: SQS calls per task-minute, counted at the HTTP level.

    .venv/bin/python bench/bench_heartbeat.py [--tasks 10] [--seconds 12] [--visibility 6]

Runs ``tasks`` tasks of ``seconds`` each on one worker (``-c tasks``) against the ministack
server through the counting proxy, and reports the ChangeMessageVisibility(Batch) calls per
task-minute. The heartbeat extends every third of the visibility timeout, one batched call per
queue for up to 10 running messages.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.counting_proxy import counted_emulator  # noqa: E402
from cloudq import CloudQ  # noqa: E402
from cloudq.infra import app_resources  # noqa: E402
from cloudq.worker import Worker  # noqa: E402
from cloudq_emulator.provision import provision  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--visibility", type=int, default=6)
    args = parser.parse_args()
    with counted_emulator() as proxy:
        app = CloudQ(f"hb{uuid.uuid4().hex[:8]}", backend=None, wait_seconds=1)

        @app.task(name="work")
        def work(seconds: float) -> None:
            time.sleep(seconds)

        provision(app_resources(app))
        for _ in range(args.tasks):
            work.delay(args.seconds)
        worker = Worker(app, concurrency=args.tasks, visibility_timeout=args.visibility)
        proxy.reset()
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        while worker.stats.acked < args.tasks:
            time.sleep(0.1)
        worker.stop()
        thread.join()
        calls = proxy.reset()
    extensions = calls["AmazonSQS.ChangeMessageVisibilityBatch"] + calls["AmazonSQS.ChangeMessageVisibility"]
    task_minutes = args.tasks * args.seconds / 60
    print(f"\nheartbeat — {args.tasks} tasks x {args.seconds:g} s, visibility timeout {args.visibility} s")
    print(f"  visibility extension calls        {extensions}")
    print(f"  per task-minute                   {extensions / task_minutes:.2f}")
    print(f"  one task alone would cost         {60 / max(args.visibility / 3, 0.5):.0f} calls per minute")


if __name__ == "__main__":
    main()
