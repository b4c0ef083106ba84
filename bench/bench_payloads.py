"""Large payloads through S3 (the claim check) on the ministack server.

    .venv/bin/python bench/bench_payloads.py [--sends 30] [--tasks 40]

1. AWS calls per large task: one 2 MB argument whose task returns a 600 KB result, from
   ``.delay()`` to ``.get()``, counted at the HTTP level (``bench.counting_proxy``), S3 calls
   by operation.
2. ``.delay()`` p50/p95 of a 2 MB argument (put the object, send the pointer) against its floor,
   a raw boto3 ``put_object`` + ``send_message`` of the same bytes, on the same clients' setup.
3. Drain rate: N queued tasks with a 2 MB argument each (and a small result) run by one
   ``cloudq worker`` (8 threads): tasks per second and MB per second, against N small tasks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402

from bench.counting_proxy import CountingProxy  # noqa: E402
from bench.run import latencies, p, run_worker  # noqa: E402
from cloudq import CloudQ  # noqa: E402
from cloudq.infra import app_resources  # noqa: E402
from cloudq_emulator.provision import provision  # noqa: E402
from cloudq_emulator.server import MinistackServer  # noqa: E402

BIG = "x" * 2_000_000
REPORT = "r" * 600_000
CONCURRENCY = 8


def make_app(endpoint_url: str) -> CloudQ:
    name = f"pl{uuid.uuid4().hex[:8]}"
    app = CloudQ(name, payload_store=f"s3://{name}-payloads/cloudq", wait_seconds=1)

    @app.task(name="report")
    def report(document: str) -> str:
        return REPORT

    @app.task(name="size")
    def size(document: str) -> int:
        return len(document)

    provision(app_resources(app), endpoint_url=endpoint_url)
    return app


def calls_per_large_task(app: CloudQ, proxy: CountingProxy) -> dict[str, Any]:
    proxy.reset()
    result = app.tasks["report"].delay(BIG)
    run_worker(app, 1, CONCURRENCY)
    assert result.get(timeout=30) == REPORT
    calls = proxy.reset()
    return dict(sorted(calls.items()))


def delay_latency(app: CloudQ, endpoint_url: str, sends: int) -> tuple[list[float], list[float]]:
    task = app.tasks["size"]
    task.delay(BIG)  # warm: the first send makes the clients
    cloudq_ms = latencies(lambda: task.delay(BIG), sends)
    s3 = boto3.client("s3", endpoint_url=endpoint_url)
    sqs = boto3.client("sqs", endpoint_url=endpoint_url)
    bucket = f"{app.name}-payloads"
    url = sqs.get_queue_url(QueueName=app.physical_queue_name("default"))["QueueUrl"]

    def raw() -> None:
        key = f"raw/{uuid.uuid4()}"
        s3.put_object(Bucket=bucket, Key=key, Body=BIG.encode())
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"bucket": bucket, "key": key}))

    raw()  # warm: connections and clients made before timing, as for cloudq
    raw_ms = latencies(raw, sends)
    sqs.purge_queue(QueueUrl=url)
    return cloudq_ms, raw_ms


def drain_rate(app: CloudQ, tasks: int, document: str) -> float:
    for _ in range(tasks):
        app.tasks["size"].delay(document)
    return tasks / run_worker(app, tasks, CONCURRENCY)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sends", type=int, default=30)
    parser.add_argument("--tasks", type=int, default=40)
    options = parser.parse_args()
    with MinistackServer() as server:
        os.environ.update(server.environment())
        proxy = CountingProxy(server.endpoint_url).start()
        os.environ["AWS_ENDPOINT_URL"] = proxy.endpoint_url
        app = make_app(server.endpoint_url)
        calls = calls_per_large_task(app, proxy)
        print("AWS calls for one task with a 2 MB argument and a 600 KB result (.delay → worker → .get):")
        for operation, count in calls.items():
            print(f"  {operation:40s} {count}")
        s3_calls = sum(count for operation, count in calls.items() if operation.startswith("S3."))
        print(f"  S3 calls in all: {s3_calls}")
        proxy.stop()
        os.environ["AWS_ENDPOINT_URL"] = server.endpoint_url
        app = make_app(server.endpoint_url)
        cloudq_ms, raw_ms = delay_latency(app, server.endpoint_url, options.sends)
        print(f"\n.delay() of a 2 MB argument, {options.sends} sends (ms):")
        print(f"  cloudq .delay()               p50 {p(cloudq_ms, 0.5):7.1f}   p95 {p(cloudq_ms, 0.95):7.1f}")
        print(f"  raw put_object + send_message p50 {p(raw_ms, 0.5):7.1f}   p95 {p(raw_ms, 0.95):7.1f}")
        large = drain_rate(app, options.tasks, BIG)
        small = drain_rate(app, options.tasks, "small")
        print(f"\nDrain, {options.tasks} tasks, one worker (8 threads):")
        print(f"  2 MB argument each: {large:6.1f} tasks/s ({large * len(BIG) / 1e6:6.1f} MB/s)")
        print(f"  small argument:     {small:6.1f} tasks/s")


if __name__ == "__main__":
    main()
