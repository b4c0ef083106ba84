"""Flow control across worker processes: a fleet-wide rate limit, measured.

    .venv/bin/python bench/bench_flow.py [--n 500] [--workers 2]

Broker and results on the local redis-server. ``--n`` calls of ``fleet_paced``
(``rate_limit="50/s"``, ``tests/tasks.py``) are sent at once, then ``--workers`` processes of
``cloudq worker -c 8`` drain them. Reported: the achieved rate (runs over the span of their
start times), the most runs in any 1 s window, dead letters, attempts spent, and the extra
broker calls per task (each wait is one re-send and one delete; from the workers' stats lines).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
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
    options = parser.parse_args()
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
