"""The RabbitMQ broker against a raw py-amqp floor, measured in the same run.

    .venv/bin/python bench/bench_amqp.py [--n 3000] [--concurrency 8]

Drain: N no-op tasks already queued, run by one in-process cloudq ``Worker`` (results off,
``concurrency`` threads), against two raw floors: one connection consuming with a prefetch of
``concurrency`` and acking each message (what the transport does, minus cloudq), and
``concurrency`` threads each with its own connection doing ``basic_get`` + ``basic_ack``.
``.delay()``: p50/p95 of one ``.delay()`` against one raw confirmed ``basic_publish`` of the same
body. All on the local RabbitMQ, quorum queues on both sides.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import amqp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import cloudq_drain, latencies, p  # noqa: E402
from cloudq.app import CloudQ  # noqa: E402

URL = "amqp://guest:guest@127.0.0.1:5672//"
BODY = '{"v":1,"id":"00000000-0000-0000-0000-000000000000","task":"noop"}'


def make_app() -> CloudQ:
    app = CloudQ(f"bench{uuid.uuid4().hex[:8]}", broker=URL, backend=None, wait_seconds=1)

    @app.task(name="noop")
    def noop() -> None:
        return None

    return app


def connect() -> Any:
    connection = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest", confirm_publish=True)
    connection.connect()
    return connection


def declare(channel: Any, queue: str) -> None:
    channel.queue_declare(queue, durable=True, auto_delete=False, arguments={"x-queue-type": "quorum"})


def fill(channel: Any, queue: str, count: int) -> None:
    for _ in range(count):
        channel.basic_publish(amqp.Message(BODY, delivery_mode=2), "", queue)


def _consume_until(count: int, threads: int, get_and_ack: Callable[[int], bool]) -> float:
    done = [0]
    lock = threading.Lock()

    def consume(index: int) -> None:
        while True:
            with lock:
                if done[0] >= count:
                    return
            if get_and_ack(index):
                with lock:
                    done[0] += 1
            else:
                time.sleep(0.001)

    started = time.perf_counter()
    workers = [threading.Thread(target=consume, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started


def raw_drain_consume(queue: str, count: int, prefetch: int) -> float:
    """Floor: one connection consuming with a prefetch of ``concurrency``, acking each message
    as it arrives (a no-op task needs no threads)."""
    connection = connect()
    channel = connection.channel()
    fill(channel, queue, count)
    done = [0]

    def on_message(message: Any) -> None:
        channel.basic_ack(message.delivery_tag)
        done[0] += 1

    started = time.perf_counter()
    channel.basic_qos(0, prefetch, False)
    channel.basic_consume(queue, callback=on_message)
    while done[0] < count:
        connection.drain_events(timeout=5)
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


def raw_drain_own(queue: str, count: int, threads: int) -> float:
    """A stronger floor: each consumer thread with its own connection."""
    filler = connect()
    fill(filler.channel(), queue, count)
    channels = [connect().channel() for _ in range(threads)]

    def get_and_ack(index: int) -> bool:
        message = channels[index].basic_get(queue)
        if message is None:
            return False
        channels[index].basic_ack(message.delivery_tag)
        return True

    elapsed = _consume_until(count, threads, get_and_ack)
    for channel in channels:
        channel.connection.close()
    filler.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency-n", type=int, default=1000)
    args = parser.parse_args()
    n, c = args.n, args.concurrency
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    setup = connect()
    admin = setup.channel()
    queues = [f"{prefix}-floor", f"{prefix}-floor-own", f"{prefix}-latency"]
    for queue in queues:
        declare(admin, queue)
    app = make_app()
    try:
        consume = raw_drain_consume(queues[0], n, c)
        own = raw_drain_own(queues[1], n, c)
        ours = cloudq_drain(app, n, c)
        publisher = connect().channel()
        message = amqp.Message(BODY, delivery_mode=2)
        raw_ms = latencies(lambda: publisher.basic_publish(message, "", queues[2]), args.latency_n)
        delay_ms = latencies(app.tasks["noop"].delay, args.latency_n)
        publisher.connection.close()
    finally:
        for queue in queues:
            admin.queue_delete(queue)
        for queue in ("default", "default-dlq"):
            admin.queue_delete(app.physical_queue_name(queue))
        app.transport.close()
        setup.close()
    print(f"\nRabbitMQ broker — {n} no-op tasks, concurrency {c}, results off, quorum queues")
    print(f"  raw floor: consume (prefetch {c}) + ack           {n / consume:,.0f} msg/s")
    print(f"  raw floor: {c} threads, basic_get + ack, own conn. {n / own:,.0f} msg/s")
    print(
        f"  cloudq worker drain                           {n / ours:,.0f} tasks/s  "
        f"({consume / ours:.2f}x the consume floor, {own / ours:.2f}x the basic_get floor)"
    )
    print(f"  raw confirmed basic_publish  p50 {p(raw_ms, 0.5):.2f} ms  p95 {p(raw_ms, 0.95):.2f} ms")
    print(
        f"  .delay()                     p50 {p(delay_ms, 0.5):.2f} ms  p95 {p(delay_ms, 0.95):.2f} ms  "
        f"(floor/ours at p50: {p(raw_ms, 0.5) / p(delay_ms, 0.5):.2f}x)"
    )


if __name__ == "__main__":
    main()
