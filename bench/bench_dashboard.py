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
import json
import os
import statistics
import sys
import time
import uuid
import warnings
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

        @app.task(name=f"work{index}", queue="default" if index == 0 else f"q{index:02d}", max_retries=0)
        def work(fail: bool = False) -> str:
            if fail:
                raise ValueError("failing on purpose")
            return "done"

    app.add_periodic(app.tasks["work0"], "rate(5 minutes)", name="every-five")
    return app


def create_resources(app: CloudQ) -> None:
    """The queues (with their dead-letter queues) and the result table, made directly: the
    rendered template of 20 queues, alarms and all, is over CloudFormation's 51,200-byte limit
    for an inline body."""
    import boto3

    resources = app_resources(app)
    sqs = boto3.client("sqs")
    for queue in resources.queues:
        fifo = {"FifoQueue": "true"} if queue.fifo else {}
        dead = sqs.create_queue(QueueName=queue.dead_letter_name, Attributes=fifo)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": queue.max_receive_count})
        sqs.create_queue(QueueName=queue.name, Attributes={**fifo, "RedrivePolicy": policy})
    assert resources.table is not None
    boto3.client("dynamodb").create_table(
        TableName=resources.table.name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": resources.table.key, "AttributeType": "S"}],
        KeySchema=[{"AttributeName": resources.table.key, "KeyType": "HASH"}],
    )


def counters_floor(app: CloudQ) -> float:
    """Milliseconds for the AWS calls a queue panel cannot do without: GetQueueAttributes of
    each queue and its dead-letter queue (URLs known), side by side on 16 threads, raw boto3."""
    from concurrent.futures import ThreadPoolExecutor

    import boto3

    sqs = boto3.client("sqs")
    if not _FLOOR_URLS:  # resolved once, as the transport keeps them
        resources = app_resources(app)
        names = [name for queue in resources.queues for name in (queue.name, queue.dead_letter_name)]
        _FLOOR_URLS.extend(sqs.get_queue_url(QueueName=name)["QueueUrl"] for name in names)
    attributes = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    start = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda url: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=attributes), _FLOOR_URLS
            )
        )
    return (time.perf_counter() - start) * 1000


_FLOOR_URLS: list[str] = []


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", "Using .httpx. with .starlette.testclient. is deprecated")
    from starlette.testclient import TestClient

    from cloudq.dashboard.security import Guard
    from cloudq.dashboard.server import create_app

    warnings.filterwarnings("ignore", "Using .httpx. with .starlette.testclient. is deprecated")
    from cloudq_emulator.server import MinistackServer

    server = MinistackServer()
    server.start()
    os.environ.update(server.environment())
    try:
        app = make_app(f"dash{uuid.uuid4().hex[:6]}")
        create_resources(app)
        app.tasks["work0"].delay(fail=True)
        drain(app, ["default"], raise_failures=False)
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
            "dead letters of default": "/dead-letters/default",
            "task by id": f"/tasks?id={done.id}",
            "periodic tasks": "/periodic",
            "recent outcomes": "/outcomes",
            "cost": "/cost",
        }
        print(f"\ndashboard render time, {QUEUES} queues on ministack, {args.requests} renders per page")
        floor = [counters_floor(app) for _ in range(args.requests)]
        print(
            f"  {'floor: the counters alone':<24} p50 {statistics.median(floor):7.1f} ms  p95 "
            f"{percentile(floor, 0.95):7.1f} ms  (raw boto3, {2 * QUEUES} GetQueueAttributes, 16 threads)"
        )
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
