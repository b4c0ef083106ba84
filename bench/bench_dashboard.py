"""How long the dashboard's server takes to render each page, for an app of 20 queues on the
emulator (ministack server): p50 and p95 over ``--requests`` renders per page, target under
200 ms.

    .venv/bin/python bench/bench_dashboard.py --requests 50

The pages are asked of the Starlette app in this process (TestClient: no socket, no browser),
so the time is the server's: the ops reads it makes (broker counters, the dead letters'
receive and hand-back, a GetItem) plus the rendering. Each queue holds 5 tasks and the first
one dead letter.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cloudq import CloudQ  # noqa: E402
from cloudq.infra import app_resources  # noqa: E402
from cloudq.testing import drain  # noqa: E402

QUEUES = 20
TARGET_MS = 200.0


def make_app(name: str) -> CloudQ:
    app = CloudQ(name, wait_seconds=1)
    for index in range(QUEUES):

        @app.task(name=f"work{index}", queue=f"q{index:02d}", max_retries=0)
        def work(fail: bool = False) -> str:
            if fail:
                raise ValueError("failing on purpose")
            return "done"

    app.add_periodic(app.tasks["work0"], "rate(5 minutes)", name="every-five")
    return app


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    from starlette.testclient import TestClient

    from cloudq.dashboard.security import Guard
    from cloudq.dashboard.server import create_app
    from cloudq_emulator.provision import provision
    from cloudq_emulator.server import MinistackServer

    server = MinistackServer()
    server.start()
    os.environ.update(server.environment())
    try:
        app = make_app(f"dash{uuid.uuid4().hex[:6]}")
        provision(app_resources(app), endpoint_url=server.endpoint_url)
        app.tasks["work0"].delay(fail=True)
        drain(app, ["q00"], raise_failures=False)
        done = app.tasks["work1"].delay()
        drain(app, ["q01"], raise_failures=False)
        for index in range(QUEUES):
            for _ in range(5):
                app.tasks[f"work{index}"].delay()
        client = TestClient(create_app(app, Guard("127.0.0.1", 5555)), base_url="http://127.0.0.1:5555")
        pages = {
            "queues (full page)": "/",
            "queue panel (refresh)": "/partials/queues",
            "dead-letter queues": "/dead-letters",
            "dead letters of q00": "/dead-letters/q00",
            "task by id": f"/tasks?id={done.id}",
            "periodic tasks": "/periodic",
            "recent outcomes": "/outcomes",
            "cost": "/cost",
        }
        print(f"\ndashboard render time, {QUEUES} queues on ministack, {args.requests} renders per page")
        for label, path in pages.items():
            assert client.get(path).status_code == 200, path  # warm: queue URLs resolved
            times = []
            for _ in range(args.requests):
                start = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - start) * 1000)
                assert response.status_code == 200
            p50, p95 = statistics.median(times), percentile(times, 0.95)
            verdict = "ok" if p95 < TARGET_MS else f"over the {TARGET_MS:.0f} ms target"
            print(f"  {label:<24} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  {verdict}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
