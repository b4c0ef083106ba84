"""The RabbitMQ broker against raw py-amqp floors, measured in the same run.

    .venv/bin/python bench/bench_amqp.py [--n 3000] [--concurrency 8] [--rounds 3]

Each round, in this order and in one process: the three drain floors, cloudq's drain, then the
``.delay()`` latencies; the figures printed are the medians over the rounds (the machine is
shared: one round alone swings by 2x), and the ratios are medians of each round's ratio.

- Drain: N no-op tasks already queued (sent beforehand, not timed), run by one in-process
  cloudq ``Worker`` (results off, ``concurrency`` threads; its transport closed afterwards, as
  ``cloudq worker`` does), against two raw floors on the same kind of queue:
  - consume: one connection consuming with a prefetch of ``concurrency`` and acking each
    message in the delivery callback, on one thread (no pool, no decoding: the least work a
    consumer can do, and so the highest rate);
  - consumers: ``concurrency`` threads each with its own connection consuming with a
    prefetch of 1 and acking in the delivery callback (consume at the worker's concurrency);
  - basic_get: ``concurrency`` threads each with its own connection doing ``basic_get`` +
    ``basic_ack``.
- ``.delay()``: p50/p95 of one ``.delay()`` against one raw ``basic_publish`` of the same body,
  both with publisher confirms (py-amqp ``confirm_publish=True``: the call returns once the
  broker has the message), persistent, to a queue nobody consumes; the two calls alternate, so
  both see the same moments of the machine.

All on the local RabbitMQ (127.0.0.1:5672), the floors' queues declared with the arguments
cloudq's transport gives its own (quorum, delivery limit, dead-lettering:
``Topology.arguments``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import amqp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import cloudq_drain, latencies, p  # noqa: E402
from cloudq.app.base import CloudQ  # noqa: E402
from cloudq.transports.amqp_topology import DELIVERY_LIMIT, Topology  # noqa: E402

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
    """A floor's queue, with the arguments of a cloudq queue of that name."""
    arguments = Topology("", DELIVERY_LIMIT, lambda: channel).arguments(queue)
    channel.queue_declare(queue, durable=True, auto_delete=False, arguments=arguments)


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


def raw_drain_consumers(queue: str, count: int, threads: int) -> float:
    """Floor at the same concurrency as the worker: ``threads`` threads, each with its own
    connection consuming with a prefetch of 1 and acking each message in the callback."""
    filler = connect()
    fill(filler.channel(), queue, count)
    done = [0]
    lock = threading.Lock()
    connections = [connect() for _ in range(threads)]

    def consume(connection: Any) -> None:
        channel = connection.channel()

        def on_message(message: Any) -> None:
            channel.basic_ack(message.delivery_tag)
            with lock:
                done[0] += 1

        channel.basic_qos(0, 1, False)
        channel.basic_consume(queue, callback=on_message)
        while done[0] < count:
            try:
                connection.drain_events(timeout=0.05)
            except TimeoutError:
                continue

    started = time.perf_counter()
    workers = [threading.Thread(target=consume, args=(connection,)) for connection in connections]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    for connection in connections:
        connection.close()
    filler.close()
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


def alternating(
    first: Callable[[], object], second: Callable[[], object], count: int
) -> tuple[list[float], list[float]]:
    """Milliseconds of ``count`` calls of each, alternating one and the other; sorted."""
    ones, twos = [], []
    for _ in range(count):
        ones.extend(latencies(first, 1))
        twos.extend(latencies(second, 1))
    return sorted(ones), sorted(twos)


@dataclass
class Round:
    consume: float
    consumers: float
    own: float
    ours: float
    raw_ms: list[float]
    delay_ms: list[float]


def one_round(admin: Any, n: int, c: int, latency_n: int) -> Round:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    queues = [f"{prefix}-floor", f"{prefix}-floor-own", f"{prefix}-latency", f"{prefix}-floor-consumers"]
    for queue in queues:
        declare(admin, queue)
    app = make_app()
    publisher = connect().channel()
    try:
        consume = raw_drain_consume(queues[0], n, c)
        own = raw_drain_own(queues[1], n, c)
        consumers = raw_drain_consumers(queues[3], n, c)
        ours = cloudq_drain(app, n, c)
        app.transport.close()  # as `cloudq worker` does at exit: its consumer would take the next sends
        message = amqp.Message(BODY, delivery_mode=2)
        delay = app.tasks["noop"].delay
        delay()  # declares the queue again (the drain closed the transport)
        raw_ms, delay_ms = alternating(
            lambda: publisher.basic_publish(message, "", queues[2]), delay, latency_n
        )
    finally:
        publisher.connection.close()
        for queue in queues:
            admin.queue_delete(queue)
        for queue in ("default", "default-dlq"):
            admin.queue_delete(app.physical_queue_name(queue))
        app.transport.close()
    return Round(n / consume, n / consumers, n / own, n / ours, raw_ms, delay_ms)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency-n", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n, c = args.n, args.concurrency
    setup = connect()
    try:
        rounds = [one_round(setup.channel(), n, c, args.latency_n) for _ in range(args.rounds)]
    finally:
        setup.close()

    def med(values: list[float]) -> float:
        return statistics.median(values)

    raw50 = [p(r.raw_ms, 0.5) for r in rounds]
    ours50 = [p(r.delay_ms, 0.5) for r in rounds]
    title = f"{n} no-op tasks, concurrency {c}, results off, quorum queues, medians of {len(rounds)} rounds"
    print(f"\nRabbitMQ broker — {title}")
    floors = [
        ("consume", f"consume (prefetch {c}) + ack in the callback, 1 thread", "consume"),
        ("consumers", f"{c} threads, consume (prefetch 1) + ack, own connections", "consumers"),
        ("basic_get", f"{c} threads, basic_get + ack, own connections", "own"),
    ]
    for _, label, field in floors:
        print(f"  raw floor: {label:52s} {med([getattr(r, field) for r in rounds]):7,.0f} msg/s")
    ratios = ", ".join(
        f"{med([r.ours / getattr(r, field) for r in rounds]):.2f}x the {name} floor"
        for name, _, field in floors
    )
    print(f"  cloudq worker drain {'':44s} {med([r.ours for r in rounds]):7,.0f} tasks/s  ({ratios})")
    raw95 = med([p(r.raw_ms, 0.95) for r in rounds])
    ours95 = med([p(r.delay_ms, 0.95) for r in rounds])
    ratio50 = med([a / b for a, b in zip(raw50, ours50, strict=True)])
    print(f"  raw confirmed basic_publish  p50 {med(raw50):.2f} ms  p95 {raw95:.2f} ms")
    print(
        f"  .delay()                     p50 {med(ours50):.2f} ms  p95 {ours95:.2f} ms  "
        f"(floor/ours at p50: {ratio50:.2f}x)"
    )
    for index, (r, raw, ours) in enumerate(zip(rounds, raw50, ours50, strict=True), 1):
        print(
            f"  round {index}: drain {r.ours:,.0f}/s = {r.ours / r.consume:.2f}x consume, "
            f"{r.ours / r.consumers:.2f}x consumers, {r.ours / r.own:.2f}x basic_get; "
            f".delay() p50 {ours:.2f} ms vs {raw:.2f} ms = {raw / ours:.2f}x"
        )


if __name__ == "__main__":
    main()
