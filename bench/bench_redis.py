"""The Redis broker against a raw redis-py floor, measured in the same run.

    .venv/bin/python bench/bench_redis.py [--n 5000]

Floor: pipelined LPUSH of the payloads (chunks of 100), then BRPOP until drained — a plain
list, no visibility, no receive counts, no dead-letter queue. Transport: RedisTransport send
in batches of 10, then receive(10) + ack until drained, with SQS's semantics. Both move the
same ~200-byte payloads on the local redis-server.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cloudq.transports.base import OutgoingMessage  # noqa: E402
from cloudq.transports.redis import RedisTransport  # noqa: E402

PAYLOAD = '{"v":1,"id":"%s","task":"noop","args":[],"kwargs":{}}' % ("x" * 150)


def _push(client: redis.Redis, n: int, key: str) -> None:
    for start in range(0, n, 100):
        pipe = client.pipeline(transaction=False)
        for _ in range(min(100, n - start)):
            pipe.lpush(key, PAYLOAD)
        pipe.execute()


def floor(client: redis.Redis, n: int, key: str) -> float:
    """The issue's floor: pipelined LPUSH, then one BRPOP per message."""
    started = time.perf_counter()
    _push(client, n, key)
    for _ in range(n):
        client.brpop([key], timeout=5)
    return n / (time.perf_counter() - started)


def batched_floor(client: redis.Redis, n: int, key: str) -> float:
    """A stronger floor: pipelined LPUSH, then RPOP of 10 per call (as our receive takes 10)."""
    started = time.perf_counter()
    _push(client, n, key)
    done = 0
    while done < n:
        done += len(client.rpop(key, 10) or [])
    return n / (time.perf_counter() - started)


def transport_rate(transport: RedisTransport, n: int, queue: str) -> float:
    started = time.perf_counter()
    for start in range(0, n, 10):
        transport.send(queue, [OutgoingMessage(PAYLOAD) for _ in range(min(10, n - start))])
    done = 0
    while done < n:
        got = transport.receive(queue, 10, wait_seconds=1)
        transport.ack(queue, [message.receipt_handle for message in got])
        done += len(got)
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    client = redis.Redis.from_url(args.url)
    prefix = f"bench{uuid.uuid4().hex[:8]}-"
    try:
        raw = floor(client, args.n, prefix + "floor")
        raw_batched = batched_floor(client, args.n, prefix + "floor10")
        ours = transport_rate(RedisTransport(client, prefix), args.n, "queue")
    finally:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
    print(f"\nRedis broker — {args.n} messages of {len(PAYLOAD)} bytes, send + receive + ack")
    print(f"  raw redis-py floor (pipelined LPUSH + BRPOP)   {raw:,.0f} msg/s")
    print(f"  raw redis-py, RPOP 10 per call                 {raw_batched:,.0f} msg/s")
    print(
        f"  RedisTransport (batches of 10)                 {ours:,.0f} msg/s  "
        f"({ours / raw:.2f}x the BRPOP floor, {ours / raw_batched:.2f}x the RPOP-10 floor)"
    )


if __name__ == "__main__":
    main()
