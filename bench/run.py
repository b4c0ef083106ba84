"""cloudq benchmarks on the ministack server, against raw boto3 floors measured in the same run.

    make bench                 # or: .venv/bin/python bench/run.py --tasks 2000

1. Drain: N no-op tasks already queued, drained by one worker (threads) — with results off
   and with DynamoDB results — against the raw floor (ReceiveMessage of 10 +
   DeleteMessageBatch, one thread per worker thread).
2. Enqueue latency: ``.delay()`` against one raw ``send_message``, p50 / p95.
3. API calls per task made by the worker, counted at the HTTP level by a proxy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3  # noqa: E402

from bench.counting_proxy import CountingProxy, counted_emulator  # noqa: E402
from cloudq import CloudQ  # noqa: E402
from cloudq.infra import app_resources  # noqa: E402
from cloudq.worker import Worker  # noqa: E402
from cloudq_emulator.provision import provision  # noqa: E402

BODY = '{"v":1,"id":"00000000-0000-0000-0000-000000000000","task":"noop"}'


def make_app(backend: str | None) -> CloudQ:
    app = CloudQ(f"bench{uuid.uuid4().hex[:8]}", backend=backend, wait_seconds=1)

    @app.task(name="noop")
    def noop() -> None:
        return None

    return app


def fill(sqs: Any, url: str, count: int) -> None:
    for start in range(0, count, 10):
        entries = [{"Id": str(i), "MessageBody": BODY} for i in range(min(10, count - start))]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)


def raw_drain(
    sqs: Any, url: str, count: int, threads: int, per_message: Callable[[str], object] | None = None
) -> float:
    """Seconds for ``threads`` raw boto3 consumers to receive and delete ``count`` messages,
    calling ``per_message(message_id)`` for each (the writes a result backend needs)."""
    done = [0]
    lock = threading.Lock()

    def consume() -> None:
        while True:
            with lock:
                if done[0] >= count:
                    return
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", []
            )
            if got:
                for message in got if per_message else ():
                    per_message(message["MessageId"])  # type: ignore[misc]
                entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
                sqs.delete_message_batch(QueueUrl=url, Entries=entries)
                with lock:
                    done[0] += len(got)

    started = time.perf_counter()
    workers = [threading.Thread(target=consume) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started


def cloudq_drain(app: CloudQ, count: int, concurrency: int) -> float:
    """Seconds for one cloudq worker to run ``count`` queued no-op tasks."""
    task = app.tasks["noop"]
    ids = [task.delay().id for _ in range(count)]
    worker = Worker(app, concurrency=concurrency, wait_seconds=1)
    started = time.perf_counter()
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    while worker.stats.acked < count:
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    worker.stop()
    thread.join()
    if app.backend is not None:
        assert len(app.backend.get_many(ids[:100])) == min(100, count)
    return elapsed


def latencies(call: Callable[[], object], count: int) -> list[float]:
    out = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        out.append((time.perf_counter() - started) * 1000)
    return sorted(out)


def p(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(len(values) * q))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency-samples", type=int, default=300)
    args = parser.parse_args()

    with counted_emulator() as proxy:
        run(args, proxy)


def run(args: argparse.Namespace, proxy: CountingProxy) -> None:
    n, c = args.tasks, args.concurrency
    threads_for_floor = max(1, c // 10)
    rows: list[tuple[str, str]] = []

    floor_app = make_app(None)
    provision(app_resources(floor_app))
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=floor_app.physical_queue_name("default"))["QueueUrl"]
    fill(sqs, url, n)
    floor = n / raw_drain(sqs, url, n, threads_for_floor)
    rows.append((f"raw boto3 drain ({threads_for_floor} consumer threads)", f"{floor:,.0f} msg/s"))

    no_results = make_app(None)
    provision(app_resources(no_results))
    proxy.reset()
    rate = n / cloudq_drain(no_results, n, c)
    calls = proxy.reset()
    rows.append(
        (
            f"cloudq worker, results off (-c {c})",
            f"{rate:,.0f} tasks/s  ({rate / floor:.2f}x floor)",
        )
    )
    sqs_calls = {k: v for k, v in calls.items() if k.startswith("AmazonSQS.")}
    enqueue_calls = sqs_calls.pop("AmazonSQS.SendMessageBatch", 0) + sqs_calls.pop("AmazonSQS.SendMessage", 0)
    worker_sqs = sum(sqs_calls.values())
    rows.append(("  SQS calls per task by the worker", f"{worker_sqs / n:.2f}  " + _breakdown(sqs_calls, n)))
    rows.append(("  SQS calls per task by .delay()", f"{enqueue_calls / n:.2f}"))

    with_results = make_app(f"dynamodb://{uuid.uuid4().hex[:8]}-results")
    provision(app_resources(with_results))
    proxy.reset()
    rate = n / cloudq_drain(with_results, n, c)
    calls = proxy.reset()
    ddb = {k: v for k, v in calls.items() if k.startswith("DynamoDB")}
    rows.append(
        (
            f"cloudq worker, DynamoDB results (-c {c})",
            f"{rate:,.0f} tasks/s  ({rate / floor:.2f}x floor)",
        )
    )
    rows.append(("  DynamoDB calls per task", f"{sum(ddb.values()) / n:.2f}  " + _breakdown(ddb, n)))
    table = with_results.result_table_name()
    dynamodb = boto3.client("dynamodb")

    def two_writes(message_id: str) -> None:
        # What a result backend costs at least: the claim and the result, one write each.
        item = {"task_id": {"S": message_id}, "state": {"S": "SUCCESS"}}
        dynamodb.put_item(TableName=table, Item=item)
        dynamodb.put_item(TableName=table, Item=item)

    fill(sqs, url, n)
    floor_ddb = n / raw_drain(sqs, url, n, c, two_writes)
    rows.append((f"raw boto3 drain + 2 DynamoDB writes/msg ({c} threads)", f"{floor_ddb:,.0f} msg/s"))
    rows.append(("  cloudq with results vs that floor", f"{rate / floor_ddb:.2f}x"))

    samples = args.latency_samples
    raw = latencies(lambda: sqs.send_message(QueueUrl=url, MessageBody=BODY), samples)
    task = no_results.tasks["noop"]
    delay = latencies(task.delay, samples)
    rows.append(("raw send_message latency p50 / p95", f"{p(raw, 0.5):.2f} / {p(raw, 0.95):.2f} ms"))
    rows.append(
        (
            ".delay() latency p50 / p95",
            f"{p(delay, 0.5):.2f} / {p(delay, 0.95):.2f} ms  "
            f"(p50 {statistics.median(delay) / statistics.median(raw):.2f}x raw)",
        )
    )
    _print(rows, n)


def _breakdown(calls: dict[str, int], n: int) -> str:
    parts = [f"{k.split('.')[-1]} {v / n:.2f}" for k, v in sorted(calls.items(), key=lambda kv: -kv[1])]
    return "(" + ", ".join(parts) + ")"


def _print(rows: list[tuple[str, str]], n: int) -> None:
    width = max(len(label) for label, _ in rows)
    print(f"\ncloudq benchmark — {n} no-op tasks, ministack on 127.0.0.1 (through a counting proxy)")
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")


if __name__ == "__main__":
    main()
