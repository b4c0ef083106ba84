"""The Lambda worker: handler overhead, cold start, and the emulated trigger's throughput
against a long-polling worker on the same emulator.

    .venv/bin/python bench/bench_lambda.py [--tasks 1000] [--lambda-concurrency 5]

1. Handler overhead per record over the task itself: events of 10 records handed to
   ``app.lambda_handler`` in this process (broker and results in memory, so only cloudq's own
   work is timed), against calling the task function directly.
2. Cold start: a fresh ``python`` importing ``cloudq.aws_lambda`` (what the runtime does before
   the first event), and importing it, loading the app and handling a first event, each
   against a bare interpreter start. Median of 7.
3. Throughput on the ministack server with DynamoDB results: N queued no-op tasks drained by
   the app's Lambda function through the emulated SQS trigger, then by one ``cloudq worker``
   (threads), each timed from the moment the consumer starts until the queue is empty.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402

from bench.run import cloudq_drain  # noqa: E402
from cloudq import CloudQ  # noqa: E402
from cloudq.infra import app_resources  # noqa: E402
from cloudq.testing import FakeLambdaContext, sqs_event  # noqa: E402
from cloudq_emulator.provision import provision  # noqa: E402
from cloudq_emulator.server import MinistackServer  # noqa: E402


def handler_overhead(records: int) -> tuple[float, float]:
    """(µs per record through the handler, µs per direct call of the task function)."""
    app = CloudQ("overhead", broker="memory://", backend="memory://")

    @app.task(name="noop")
    def noop() -> None:
        return None

    for _ in range(records):
        noop.delay()
    events = []
    while True:
        event = sqs_event(app, count=10)
        if not event["Records"]:
            break
        events.append(event)
    context = FakeLambdaContext(timeout_seconds=900)
    started = time.perf_counter()
    for event in events:
        assert app.lambda_handler(event, context) == {"batchItemFailures": []}
    handler = (time.perf_counter() - started) / records
    started = time.perf_counter()
    for _ in range(records):
        noop()
    direct = (time.perf_counter() - started) / records
    return handler * 1e6, direct * 1e6


FIRST_EVENT = """
import time
t = time.perf_counter()
import cloudq.aws_lambda as entry
imported = time.perf_counter()
from cloudq.testing import FakeLambdaContext, sqs_event
entry._app = None
entry.handler({"Records": []}, FakeLambdaContext())
app = entry._app
app.tasks["noop"].delay()
assert entry.handler(sqs_event(app), FakeLambdaContext()) == {"batchItemFailures": []}
print(imported - t, time.perf_counter() - t)
"""


def cold_start(samples: int = 7) -> tuple[float, float, float, float]:
    """Median ms: bare interpreter; fresh process importing the handler module (in-process
    time); same for import + load app + first event; and the whole fresh process wall time."""
    env = {
        **os.environ,
        "CLOUDQ_APP": "bench.lambda_tasks:app",
        "CLOUDQ_BROKER": "memory://",
        "CLOUDQ_BACKEND": "memory://",
        "PYTHONPATH": str(ROOT),
    }
    bare, imports, firsts, walls = [], [], [], []
    for _ in range(samples):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True, env=env)
        bare.append(time.perf_counter() - started)
        started = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", FIRST_EVENT], check=True, env=env, capture_output=True, text=True
        )
        walls.append(time.perf_counter() - started)
        imported, first = (float(value) for value in out.stdout.split())
        imports.append(imported)
        firsts.append(first)
    return tuple(statistics.median(values) * 1000 for values in (bare, imports, firsts, walls))  # type: ignore[return-value]


def _queued(sqs: Any, url: str) -> int:
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    found = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(found[name]) for name in names)


def lambda_drain(server: MinistackServer, count: int, concurrency: int) -> tuple[float, int]:
    """Seconds for the deployed function to drain ``count`` queued no-op tasks, and the number
    of results stored."""
    name = f"benchl{uuid.uuid4().hex[:6]}"
    os.environ.update(
        {
            "CLOUDQ_BENCH_APP": name,
            "CLOUDQ_LAMBDA_QUEUES": "default",
            "CLOUDQ_LAMBDA_MAXIMUM_CONCURRENCY": str(concurrency),
        }
    )
    sys.modules.pop("bench.lambda_tasks", None)
    from bench.lambda_tasks import app

    resources = app_resources(app, "bench.lambda_tasks:app")
    # The queues first (the stack without the function), then the function: the trigger
    # starts on a full queue.
    provision(resources.model_copy(update={"function": None}), endpoint_url=server.endpoint_url)
    ids = [app.tasks["noop"].delay().id for _ in range(count)]
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=app.physical_queue_name("default"))["QueueUrl"]
    started = time.perf_counter()
    provision(resources, endpoint_url=server.endpoint_url)
    while _queued(sqs, url):
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    assert app.backend is not None
    stored = sum(len(app.backend.get_many(ids[i : i + 100])) for i in range(0, count, 100))
    for key in ("CLOUDQ_LAMBDA_QUEUES", "CLOUDQ_LAMBDA_MAXIMUM_CONCURRENCY"):
        os.environ.pop(key)
    return elapsed, stored


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--lambda-concurrency", type=int, default=5)
    parser.add_argument("--worker-concurrency", type=int, default=16)
    parser.add_argument("--overhead-records", type=int, default=20000)
    args = parser.parse_args()

    handler_us, direct_us = handler_overhead(args.overhead_records)
    records = args.overhead_records
    print(f"\nLambda handler, {records} no-op records in events of 10 (broker and results in memory)")
    print(f"  per record through app.lambda_handler   {handler_us:8.1f} µs")
    print(f"  per direct call of the task function    {direct_us:8.1f} µs")
    overhead_ms = (handler_us - direct_us) / 1000
    print(f"  handler overhead per record             {overhead_ms:8.3f} ms  (target <= 1 ms)")

    bare, imported, first, wall = cold_start()
    print("\nCold start, fresh process, median of 7")
    print(f"  bare interpreter start                  {bare:8.0f} ms")
    print(f"  import cloudq.aws_lambda                {imported:8.0f} ms")
    print(f"  import + load app + first event         {first:8.0f} ms")
    print(f"  whole process (interpreter + above)     {wall:8.0f} ms")

    with MinistackServer() as server:
        os.environ.update(server.environment())
        lambda_seconds, stored = lambda_drain(server, args.tasks, args.lambda_concurrency)
        worker_app = CloudQ(f"benchw{uuid.uuid4().hex[:6]}", wait_seconds=1)
        worker_app.task(name="noop")(lambda: None)
        provision(app_resources(worker_app), endpoint_url=server.endpoint_url)
        worker_seconds = cloudq_drain(worker_app, args.tasks, args.worker_concurrency)
    print(f"\nThroughput, {args.tasks} queued no-op tasks, DynamoDB results, ministack server")
    print(
        f"  emulated Lambda trigger (batches of 10, max concurrency {args.lambda_concurrency})"
        f"  {args.tasks / lambda_seconds:8.0f} tasks/s  ({stored}/{args.tasks} results stored)"
    )
    print(
        f"  cloudq worker (-c {args.worker_concurrency})"
        f"                            {args.tasks / worker_seconds:8.0f} tasks/s"
    )
    print(f"  trigger / worker                        {worker_seconds / lambda_seconds:8.2f}x")


if __name__ == "__main__":
    main()
