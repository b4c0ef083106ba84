"""Flow control across worker processes: a fleet-wide rate limit, and priority lanes, measured.

    .venv/bin/python bench/bench_flow.py [--n 500] [--workers 2]
    .venv/bin/python bench/bench_flow.py --lanes [--backlog 2000] [--samples 20]

Broker and results on the local redis-server. ``--n`` calls of ``fleet_paced``
(``rate_limit="50/s"``, ``tests/tasks.py``) are sent at once, then ``--workers`` processes of
``cloudq worker -c 8`` drain them. Reported: the achieved rate (runs over the span of their
start times), the most runs in any 1 s window, dead letters, attempts spent, and the extra
broker calls per task (each wait is one re-send and one delete; from the workers' stats lines).

``--lanes``: ``--backlog`` default-lane tasks of 0.1 s (``lane_work``) are queued for one
``cloudq worker -c 4`` (the default queue with a high lane, ``CLOUDQ_PRIORITY_QUEUES``); once
it is busy, ``--samples`` high tasks are sent one at a time, each when the last one started.
Reported: a high task's wait from its send to its start (p50, p95, max), and how many
default tasks ran meanwhile.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cloudq import State  # noqa: E402
from tests.tasks import make_app  # noqa: E402

REDIS = "redis://127.0.0.1:6379/0"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--lanes", action="store_true", help="measure priority lanes instead")
    parser.add_argument("--backlog", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=20)
    options = parser.parse_args()
    if options.lanes:
        lanes(options.backlog, options.samples)
        return
    name = f"bf{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "CLOUDQ_TEST_APP": name, "CLOUDQ_BROKER": REDIS, "CLOUDQ_BACKEND": REDIS}
    app = make_app(name, broker=REDIS, backend=REDIS)
    results = [app.tasks["fleet_paced"].delay(str(i)) for i in range(options.n)]
    command = [sys.executable, "-m", "cloudq", "worker", "tests.tasks:app", "-c", "8", "--wait", "1"]
    workers = [
        subprocess.Popen(command, env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
        for _ in range(options.workers)
    ]
    try:
        records = _wait_for(app, [result.id for result in results], timeout=options.n / 50 * 4 + 30)
    finally:
        logs = _stop(workers)
    times = sorted(record.value for record in records)
    span = times[-1] - times[0]
    window = max(sum(1 for t in times if start <= t < start + 1) for start in times)
    resent = sum(int(count) for count in re.findall(r"resent=(\d+)", logs))
    dead = app.transport.stats("default-dlq").visible if hasattr(app.transport, "stats") else "?"
    print(f"{options.n} tasks, rate_limit 50/s, {options.workers} workers (-c 8), Redis broker and backend")
    print(
        f"achieved rate: {(len(times) - 1) / span:.1f}/s over {span:.1f} s; most in any 1 s window: {window}"
    )
    print(f"attempts other than 1: {sum(1 for r in records if r.attempts != 1)}; dead letters: {dead}")
    print(
        f"re-sends (waits): {resent}, {resent / options.n:.2f} per task; extra broker calls per task: "
        f"{2 * resent / options.n:.2f} (a send and a delete each) + 1 rate-bucket write"
    )


def lanes(backlog: int, samples: int) -> None:
    name = f"bl{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "CLOUDQ_TEST_APP": name,
        "CLOUDQ_BROKER": REDIS,
        "CLOUDQ_BACKEND": REDIS,
        "CLOUDQ_PRIORITY_QUEUES": "default",
    }
    app = make_app(name, broker=REDIS, backend=REDIS, priority_queues=("default",))
    work = app.tasks["lane_work"]
    work.map([0.1] * backlog)
    command = [sys.executable, "-m", "cloudq", "worker", "tests.tasks:app", "-c", "4", "--wait", "1"]
    worker = subprocess.Popen(command, env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    waits = []
    try:
        work.apply_async((0.0,), priority="high").get(timeout=60)  # up, and busy
        before = app.transport.stats("default").visible
        for _ in range(samples):
            sent = time.time()
            waits.append(work.apply_async((0.0,), priority="high").get(timeout=60) - sent)
        ran = before - app.transport.stats("default").visible
    finally:
        _stop([worker])
    waits.sort()
    p95 = waits[min(len(waits) - 1, round(0.95 * len(waits)) - 1)]
    print(f"priority lanes: {samples} high tasks behind {backlog} default ones of 0.1 s, -c 4, Redis")
    print(
        f"a high task's wait from send to start: p50 {statistics.median(waits) * 1000:.0f} ms, "
        f"p95 {p95 * 1000:.0f} ms, max {waits[-1] * 1000:.0f} ms; default tasks started meanwhile: {ran}"
    )


def _wait_for(app, ids, timeout):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = app.backend.get_many(ids)
        if len(records) == len(ids) and all(r.state is State.SUCCESS for r in records.values()):
            return list(records.values())
        time.sleep(0.5)
    raise SystemExit("not all tasks succeeded in time")


def _stop(workers: list[subprocess.Popen[str]]) -> str:
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    return "".join(worker.communicate(timeout=30)[1] for worker in workers)


if __name__ == "__main__":
    main()
