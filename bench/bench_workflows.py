"""Batch enqueue and chord overhead on the ministack server, against raw boto3 floors measured
in the same run.

    make bench                 # or: .venv/bin/python bench/bench_workflows.py --tasks 5000

1. Enqueue N tasks: ``task.map`` against the raw SendMessageBatch floor (pre-encoded bodies,
   10 per call, one thread) and against sequential ``.delay()``; SQS send calls per task,
   counted at the HTTP level by a proxy.
2. Chord overhead: a chord of M members and a group of M members run by one worker with
   DynamoDB results; the extra backend (and SQS) calls per member that the chord costs.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3  # noqa: E402

from bench.counting_proxy import CountingProxy, counted_emulator  # noqa: E402
from cloudq import CloudQ, chord, group  # noqa: E402
from cloudq.core.message import Message  # noqa: E402
from cloudq.infra import app_resources  # noqa: E402
from cloudq.worker import Worker  # noqa: E402
from cloudq_emulator.provision import provision  # noqa: E402


def make_app() -> CloudQ:
    app = CloudQ(f"benchwf{uuid.uuid4().hex[:8]}", wait_seconds=1)

    @app.task(name="add")
    def add(a: int, b: int) -> int:
        return a + b

    @app.task(name="total")
    def total(values: list[int]) -> int:
        return sum(values)

    provision(app_resources(app))
    return app


def raw_floor(url: str, n: int) -> float:
    sqs = boto3.client("sqs")
    bodies = [Message(task="add", args=[i, i]).model_dump_json(exclude_none=True) for i in range(n)]
    started = time.perf_counter()
    for start in range(0, n, 10):
        entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies[start : start + 10])]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    return time.perf_counter() - started


def sends(calls: Counter[str]) -> int:
    return calls["AmazonSQS.SendMessageBatch"] + calls["AmazonSQS.SendMessage"]


def run_worker(app: CloudQ, acks: int) -> None:
    """Run one worker until it has acknowledged ``acks`` messages (no result polling, so the
    calls counted are the worker's own)."""
    worker = Worker(app, concurrency=16, wait_seconds=1)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    while worker.stats.acked < acks:
        time.sleep(0.01)
    worker.stop()
    thread.join()


def purge(app: CloudQ) -> None:
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=app.physical_queue_name("default"))["QueueUrl"]
    sqs.purge_queue(QueueUrl=url)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--chord", type=int, default=200)
    args = parser.parse_args()
    with counted_emulator() as proxy:
        rows = enqueue(args.tasks, proxy) + chord_overhead(args.chord, proxy)
    width = max(len(label) for label, _ in rows)
    print("\ncloudq workflows benchmark — ministack on 127.0.0.1 (through a counting proxy)")
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")


def enqueue(n: int, proxy: CountingProxy) -> list[tuple[str, str]]:
    app = make_app()
    url = boto3.client("sqs").get_queue_url(QueueName=app.physical_queue_name("default"))["QueueUrl"]
    app.tasks["add"].delay(0, 0)  # the queue URL is resolved once, outside the timings
    # The floor is measured before and after the cloudq runs; the faster one counts.
    floor = n / raw_floor(url, n)
    purge(app)
    proxy.reset()
    started = time.perf_counter()
    app.tasks["add"].map((i, i) for i in range(n))
    mapped = n / (time.perf_counter() - started)
    map_sends = sends(proxy.reset())
    purge(app)
    started = time.perf_counter()
    for i in range(n):
        app.tasks["add"].delay(i, i)
    sequential = n / (time.perf_counter() - started)
    delay_sends = sends(proxy.reset())
    purge(app)
    floor = max(floor, n / raw_floor(url, n))
    purge(app)
    return [
        (f"raw SendMessageBatch floor ({n} messages, 10 per call)", f"{floor:,.0f} msg/s"),
        (f"task.map of {n}", f"{mapped:,.0f} tasks/s  ({mapped / floor:.2f}x floor)"),
        (f"sequential .delay() x {n}", f"{sequential:,.0f} tasks/s  ({sequential / floor:.2f}x floor)"),
        ("  SQS send calls per task: task.map", f"{map_sends / n:.3f}"),
        ("  SQS send calls per task: .delay()", f"{delay_sends / n:.3f}"),
    ]


def chord_overhead(m: int, proxy: CountingProxy) -> list[tuple[str, str]]:
    app = make_app()
    add, total = app.tasks["add"], app.tasks["total"]
    proxy.reset()
    grouped = group(add.s(i, i) for i in range(m)).delay()
    run_worker(app, m)
    group_calls = proxy.reset()
    chorded = chord((add.s(i, i) for i in range(m)), total.s()).delay()
    run_worker(app, m + 1)
    chord_calls = proxy.reset()
    assert grouped.get(timeout=10) == [2 * i for i in range(m)]
    assert chorded.get(timeout=10) == sum(2 * i for i in range(m))

    def per_member(prefix: str) -> float:
        extra = sum(v for k, v in chord_calls.items() if k.startswith(prefix))
        extra -= sum(v for k, v in group_calls.items() if k.startswith(prefix))
        return extra / m

    by_operation = {
        k.split(".")[-1]: (chord_calls[k] - group_calls.get(k, 0)) / m
        for k in chord_calls
        if k.startswith("DynamoDB") and chord_calls[k] != group_calls.get(k, 0)
    }
    breakdown = ", ".join(f"{k} {v:+.2f}" for k, v in sorted(by_operation.items()))
    return [
        (
            f"chord of {m} vs group of {m}: backend calls per member",
            f"{per_member('DynamoDB'):+.2f}  ({breakdown})",
        ),
        (
            "  SQS calls per member",
            f"{per_member('AmazonSQS'):+.2f} (the callback's message; receives vary with timing)",
        ),
    ]


if __name__ == "__main__":
    main()
