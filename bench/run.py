"""cloudq benchmarks on the ministack server, against raw boto3 floors measured in the same run.

    make bench                 # or: .venv/bin/python bench/run.py --tasks 5000 --concurrency 1 8 16

1. Drain at equal concurrency: N no-op tasks already queued, drained by one cloudq worker
   process (``-c N`` threads, INFO logging on as a user runs it, no hooks) and by a raw boto3
   floor process with as many consumer threads (ReceiveMessage of 10 + DeleteMessageBatch),
   each in its own fresh process, for N in ``--concurrency``, floor and worker alternating for
   ``--rounds`` rounds (3). Reported per consumer, medians of the rounds: tasks/s
   (from process start to the last delete, start-up included), CPU µs per task (user + sys
   of that process over the same span / tasks) and SQS calls per task (counted at the HTTP
   level by a proxy, ``bench/counting_proxy.py``). Both start from compiled bytecode, as
   installed packages do (a cache warmed once, ``PYTHONPYCACHEPREFIX``). The same loop drains
   with a lean floor (the floor's loop on the lean path's clients), the worker on the lean path
   (``CLOUDQ_AWS_HTTP=lean``) and the peers (``bench/peers.py``, which says how each is
   configured): Celery, sqs-workers, dramatiq-sqs and taskiq-aio-sqs, each in its own fresh
   process at the same N, draining as many tasks (``--tasks``) queued by its own producer
   (not timed), its queue checked empty after; ``--peers`` picks them (default: all that
   are installed, ``none``: none); a peer that is not installed is left out with one line
   (``pip install -e '.[bench]'``). Each peer first drains 20 tasks untimed, which warms its
   bytecode.
2. With DynamoDB results, against a raw floor making the same two requests per message as
   cloudq's backend (the claim's conditional UpdateItem, the result's conditional PutItem of
   the same attributes: ``floor_writes``), and the
   cost modes (``ignore_result``, ``deduplicate=False``, both): AWS requests per task and cost
   per million tasks for each mode, worker or Lambda (``prices`` below).
3. Enqueue latency: ``.delay()`` against one raw ``send_message``, p50 / p95.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from bench.consumers import _noop, deletes_returned, make_app  # noqa: E402
from bench.peers import PEERS  # noqa: E402

#: A no-op task's body as ``.delay()`` writes it; each queued message has its own id.
BODY = '{"v":1,"id":"%s","task":"noop"}'


#: The library's one price table (``cloudq.ops.prices``, us-east-1): SQS standard queue
#: requests (each 64 KB chunk of a payload is one request), DynamoDB on-demand write and read
#: request units (an item up to 1 KB: one WRU per write; an eventually consistent read up to
#: 4 KB: half an RRU), Lambda requests and duration (x86). Read by the parent only: a floor
#: process must not import cloudq (its start-up is part of its figures).
def prices() -> dict[str, float]:
    from cloudq.ops.prices import prices_for

    table = prices_for("us-east-1", "")
    return {
        "sqs_request": table.sqs_standard_per_million / 1e6,
        "dynamodb_wru": table.dynamodb_write_per_million / 1e6,
        "dynamodb_rru": table.dynamodb_read_per_million / 1e6,
        "lambda_request": table.lambda_per_million / 1e6,
        "lambda_gb_second": table.lambda_gb_second,
    }


#: The Lambda worker's assumptions: batches of 10 records, 256 MB, 20 ms billed per batch of
#: no-op tasks (the handler's own time per record is in bench/bench_lambda.py).
LAMBDA_BATCH, LAMBDA_GB, LAMBDA_SECONDS_PER_BATCH = 10, 0.25, 0.020
#: DynamoDB operations and the request units each costs (records of a no-op task < 1 KB).
WRITE_OPERATIONS = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem")
READ_OPERATIONS = ("GetItem", "BatchGetItem", "Query")


def cloudq_drain(app: Any, count: int, concurrency: int) -> float:
    """Seconds for one cloudq worker (in this process, ``concurrency`` threads) to run
    ``count`` no-op tasks queued beforehand (the sends are not timed) and have every message
    acknowledged."""
    from cloudq.worker import Worker

    for _ in range(count):
        app.tasks["noop"].delay()
    worker = Worker(app, concurrency=concurrency, wait_seconds=1)
    with deletes_returned(app, count) as acked:
        started = time.perf_counter()
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        acked.wait()
        elapsed = time.perf_counter() - started
    worker.stop()
    thread.join()
    return elapsed


# -- the parent: server, proxy, queues, and the table --------------------------------------


@dataclass
class Drain:
    label: str
    tasks: int
    seconds: float
    cpu_seconds: float
    calls: dict[str, int]
    #: A peer's drain that did not finish in time: its figures are of the tasks it did.
    timed_out: bool = False

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu_seconds / self.tasks * 1e6

    def per_task(self, prefix: str, names: tuple[str, ...] | None = None) -> float:
        chosen = {k: v for k, v in self.calls.items() if k.startswith(prefix)}
        if names is not None:
            chosen = {k: v for k, v in chosen.items() if k.split(".")[-1] in names}
        return sum(chosen.values()) / self.tasks


def spawn(args: list[str], env: dict[str, str], proxy: Any, label: str, count: int) -> Drain:
    """Run a consumer process (``bench/consumers.py``); time it from its start to its report
    (start-up included)."""
    proxy.reset()
    started = time.time()
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "consumers.py"), *args],
        env=env,
        stdout=subprocess.PIPE,
        # The worker's INFO lines are written (as a user runs it), kept only if asked.
        stderr=open(os.environ.get("CLOUDQ_BENCH_LOG", os.devnull), "a"),  # noqa: SIM115
        text=True,
    )
    # The report is the first JSON line (a peer may print a banner of its own on stdout).
    lines = (line for line in out.stdout.splitlines() if line.startswith("{"))
    figures = json.loads(next(lines, "{}"))
    partial = "ran" in figures and "done" in figures  # a peer that did not finish in time
    if (out.returncode and not partial) or "done" not in figures:
        reason = figures.get("error", "no report; CLOUDQ_BENCH_LOG=<file> keeps its log")
        raise RuntimeError(f"{label}: exit status {out.returncode}, {reason}")
    calls = dict(proxy.reset())
    calls = {k: v for k, v in calls.items() if "SendMessage" not in k}  # the fill, not the consumer
    if partial:
        ran = max(1, int(figures["ran"]))
        label = f"{label} (timed out: {ran} of {count})"
        return Drain(label, ran, figures["done"] - started, figures["cpu"], calls, timed_out=True)
    return Drain(label, count, figures["done"] - started, figures["cpu"], calls)


def fill(sqs: Any, url: str, count: int) -> None:
    for start in range(0, count, 10):
        entries = [{"Id": str(i), "MessageBody": BODY % uuid.uuid4()} for i in range(min(10, count - start))]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)


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
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 16])
    parser.add_argument("--rounds", type=int, default=3, help="drains per consumer at each -c (medians)")
    parser.add_argument("--results-concurrency", type=int, default=8, help="0: skip")
    parser.add_argument("--latency-samples", type=int, default=300)
    parser.add_argument("--map-tasks", type=int, default=2000, help="tasks sent by task.map (0: skip)")
    parser.add_argument(
        "--peers",
        nargs="+",
        choices=[*PEERS, "none"],
        help="the peers drained beside cloudq (default: all that are installed; none: skip them)",
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["default", "ignore_result", "no_claim", "neither"],
        help="the result modes measured with DynamoDB results",
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    from bench.counting_proxy import CountingProxy
    from cloudq_emulator.server import MinistackServer

    server = MinistackServer()
    server.start()
    proxy = CountingProxy(server.endpoint_url).start()
    os.environ.update(server.environment())
    try:
        run(args, server.endpoint_url, proxy)
    finally:
        proxy.stop()
        server.stop()


def run(args: argparse.Namespace, direct_url: str, proxy: Any) -> None:
    import boto3

    from cloudq import CloudQ
    from cloudq.infra import app_resources
    from cloudq_emulator.provision import provision

    n = args.tasks
    # The consumers talk through the counting proxy; the parent fills queues directly.
    os.environ["AWS_ENDPOINT_URL"] = direct_url
    child_env = {**os.environ, "AWS_ENDPOINT_URL": proxy.endpoint_url, "PYTHONPATH": str(ROOT)}
    # Both consumers start from compiled bytecode, as an installed wheel does: with
    # PYTHONDONTWRITEBYTECODE set (a dev shell on an editable install) every fresh worker
    # process would compile cloudq from source, while boto3's bytecode came with its wheel.
    child_env.pop("PYTHONDONTWRITEBYTECODE", None)
    child_env["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="cloudq-bench-bytecode-")
    warm = (
        "import boto3, cloudq, cloudq.worker, cloudq.runtime.logs, cloudq.backends.dynamodb,"
        " cloudq.core.lean.client, bench.consumers"
    )
    subprocess.run([sys.executable, "-c", warm], env=child_env, check=True)
    sqs = boto3.client("sqs")

    def queue(backend: str | None = None, mode: str = "default") -> tuple[Any, str]:
        app = make_app(CloudQ, f"bench{uuid.uuid4().hex[:8]}", backend, mode)
        provision(app_resources(app))
        url = sqs.get_queue_url(QueueName=app.physical_queue_name("default"))["QueueUrl"]
        return app, url

    def floor(c: int, table: str | None = None, http: str = "boto3") -> Drain:
        _, url = queue()
        fill(sqs, url, n)
        extra = ["--backend", table] if table else []
        label = f"raw {http} floor, {c} threads" + (" + 2 writes/msg" if table else "")
        return spawn(
            [
                "floor",
                "--target",
                url,
                "--tasks",
                str(n),
                "--concurrency",
                str(c),
                "--http",
                http,
            ]
            + extra,
            child_env,
            proxy,
            label,
            n,
        )

    def worker(c: int, backend: str | None = None, mode: str = "default", http: str = "boto3") -> Drain:
        app, url = queue(backend, mode)
        fill(sqs, url, n)
        extra = ["--backend", backend] if backend else []
        label = f"cloudq worker -c {c}, {http}" + (f", results ({mode})" if backend else ", results off")
        return spawn(
            [
                "worker",
                "--target",
                app.name,
                "--tasks",
                str(n),
                "--concurrency",
                str(c),
                "--mode",
                mode,
                *extra,
            ],
            {**child_env, "CLOUDQ_AWS_HTTP": http},
            proxy,
            label,
            n,
        )

    # Printed before the table: a peer that is not installed, and the peers' warm-up drains.
    peers = peer_consumers(chosen_peers(args.peers), n, sqs, child_env, proxy)
    print(
        f"\ncloudq benchmark — {n} no-op tasks per drain, medians of {args.rounds} rounds, ministack on "
        "127.0.0.1, each consumer "
        "in its own process (through a counting proxy)"
    )
    print(
        f"  {'consumer':<52} {'tasks/s':>8} {'x floor':>8} {'CPU µs/task':>12} {'x floor':>8} {'SQS/task':>9}"
    )
    consumers: list[Callable[[int], Drain]] = [
        floor,
        lambda c: floor(c, http="lean"),
        worker,
        lambda c: worker(c, http="lean"),
        *peers,
    ]
    for c in args.concurrency:
        # The consumers alternate, round after round; each row is the medians of its rounds.
        rounds = [[consume(c) for consume in consumers] for _ in range(args.rounds)]
        raw, *others = (median_drain([each[side] for each in rounds]) for side in range(len(consumers)))
        for drain in (raw, *others):
            print_row(drain, raw)

    c = args.results_concurrency

    def new_table() -> str:
        """A fresh, empty table for each drain: the emulator's writes slow down as a table
        grows, so a shared one would favour whoever drains first."""
        table = f"bench{uuid.uuid4().hex[:8]}-results"
        queue(f"dynamodb://{table}")
        return table

    if c:
        raw = floor(c, new_table())
        lean_floor = floor(c, new_table(), "lean")
        modes = [worker(c, f"dynamodb://{new_table()}", mode) for mode in args.modes]
        lean = worker(c, f"dynamodb://{new_table()}", "default", "lean")
        print(f"\nWith DynamoDB results (-c {c})")
        if os.environ.get("BENCH_CALLS"):
            for drain in (raw, *modes):
                print(drain.label, {k: round(v / drain.tasks, 3) for k, v in drain.calls.items()})
        for drain in (raw, lean_floor, *modes, lean):
            print_row(drain, raw)
        print_costs(modes, n)

    print_sending(queue, sqs, args)


#: A peer's row label, at concurrency ``%d`` (how each is configured: ``bench/peers.py``).
PEER_LABELS = {
    "celery": "celery worker --pool threads -c %d",
    "sqs-workers": "sqs-workers, %d threads",
    "dramatiq-sqs": "dramatiq-sqs, 1 process, %d threads",
    "taskiq-aio-sqs": "taskiq-aio-sqs, %d async tasks",
}


def chosen_peers(names: list[str] | None) -> list[str]:
    """The peers asked for (all by default; ``none``: none) that are installed; one line for
    each that is not."""
    if names and "none" in names:
        return []
    chosen = []
    for name in names or PEERS:
        if PEERS[name].installed:
            chosen.append(name)
        else:
            print(f"  {name} is not installed, left out: pip install -e '.[bench]'")
    return chosen


def peer_drain(name: str, c: int, count: int, sqs: Any, env: dict[str, str], proxy: Any) -> Drain:
    """``count`` tasks queued by the peer's own producer (not timed), drained by the peer in its
    own process (``bench/peers.py``); its queue is checked full before and empty after."""
    queue_name = f"bench{uuid.uuid4().hex[:8]}-{name}"
    url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    PEERS[name].fill(queue_name, url, count)
    check_queued(sqs, url, count, f"{name}'s producer queued")
    arguments = [f"peer:{name}", "--target", queue_name, "--tasks", str(count)]
    drain = spawn([*arguments, "--concurrency", str(c)], env, proxy, PEER_LABELS[name] % c, count)
    if not drain.timed_out:
        check_queued(sqs, url, 0, f"{name} left")
    return drain


def peer_consumers(
    names: list[str], n: int, sqs: Any, env: dict[str, str], proxy: Any
) -> list[Callable[[int], Drain]]:
    """One consumer per peer, each draining ``n`` tasks at the concurrency it is given, after
    one small drain that is not timed: it imports, and so compiles into the bytecode cache, what
    the peer's consumer runs, as the warm-up import does for the floors and cloudq."""
    for name in names:
        peer_drain(name, 2, 20, sqs, env, proxy)
    timed_out: dict[tuple[str, int], Drain] = {}

    def drain(name: str, c: int) -> Drain:
        """A peer that did not finish in time at ``c`` is not run again at ``c`` (its partial
        row stands for the later rounds): one such drain takes minutes."""
        if (name, c) in timed_out:
            return timed_out[name, c]
        done = peer_drain(name, c, n, sqs, env, proxy)
        if done.timed_out:
            timed_out[name, c] = done
        return done

    return [lambda c, name=name: drain(name, c) for name in names]


def check_queued(sqs: Any, url: str, expected: int, what: str) -> None:
    """Fail unless the queue holds ``expected`` messages (visible, in flight or delayed)."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    names.append("ApproximateNumberOfMessagesDelayed")
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    queued = sum(int(attributes.get(name, 0)) for name in names)
    if queued != expected:
        raise RuntimeError(f"{what} {queued} messages in its queue, not {expected}")


def print_sending(queue: Callable[[], tuple[Any, str]], sqs: Any, args: argparse.Namespace) -> None:
    if args.latency_samples:
        print_latencies(queue, sqs, args.latency_samples)
    if args.map_tasks:
        print_map(queue, sqs, args.map_tasks, args.rounds)


def print_latencies(queue: Callable[[], tuple[Any, str]], sqs: Any, samples: int) -> None:
    """``.delay()`` on both paths against one raw boto3 ``send_message``, p50 / p95."""
    from cloudq import CloudQ

    app, url = queue()
    raw_send = latencies(lambda: sqs.send_message(QueueUrl=url, MessageBody=BODY % uuid.uuid4()), samples)
    lean_app = CloudQ(app.name, backend=None, aws_http="lean")
    lean_app.task(name="noop")(_noop)
    print(f"\n  raw send_message latency p50 / p95   {p(raw_send, 0.5):.2f} / {p(raw_send, 0.95):.2f} ms")
    for label, delay_app in (("boto3", app), ("lean", lean_app)):
        delay = latencies(delay_app.tasks["noop"].delay, samples)
        print(
            f"  .delay() ({label}) latency p50 / p95  {p(delay, 0.5):.2f} / {p(delay, 0.95):.2f} ms  "
            f"(p50 {statistics.median(delay) / statistics.median(raw_send):.2f}x raw)"
        )


def print_map(queue: Callable[[], tuple[Any, str]], sqs: Any, count: int, rounds: int) -> None:
    """``task.map`` of ``count`` no-op calls on both paths, against a raw boto3 floor sending
    the same bodies with ``send_message_batch``, 10 a call, one after another (as ``map``
    sends, from the calling thread); sends per second, medians of ``rounds``, alternating."""
    from cloudq import CloudQ

    app, url = queue()
    lean_app = CloudQ(app.name, backend=None, aws_http="lean")
    lean_app.task(name="noop")(_noop)

    def floor() -> None:
        for start in range(0, count, 10):
            size = min(10, count - start)
            entries = [{"Id": str(i), "MessageBody": BODY % uuid.uuid4()} for i in range(size)]
            sqs.send_message_batch(QueueUrl=url, Entries=entries)

    senders: dict[str, Callable[[], object]] = {
        "raw boto3 send_message_batch floor": floor,
        "task.map (boto3)": lambda: app.tasks["noop"].map([()] * count),
        "task.map (lean)": lambda: lean_app.tasks["noop"].map([()] * count),
    }
    seconds: dict[str, list[float]] = {label: [] for label in senders}
    for _ in range(rounds):
        for label, send in senders.items():
            started = time.perf_counter()
            send()
            seconds[label].append(time.perf_counter() - started)
    floor_rate = count / statistics.median(seconds["raw boto3 send_message_batch floor"])
    print(f"\n  sending {count} tasks, medians of {rounds}")
    for label, spent in seconds.items():
        rate = count / statistics.median(spent)
        print(f"  {label:<40} {rate:>8,.0f}/s  {rate / floor_rate:.2f}x floor")


def median_drain(drains: list[Drain]) -> Drain:
    """One row for several rounds of a consumer: the median time and the median CPU (the
    machine is shared and noisy: one round can be 15% off), the calls of the first round."""
    partial = [drain for drain in drains if drain.timed_out]
    if partial:  # its figures are of fewer tasks than the others': not mixed in a median
        return partial[0]
    first = drains[0]
    seconds = statistics.median(drain.seconds for drain in drains)
    cpu_seconds = statistics.median(drain.cpu_seconds for drain in drains)
    return Drain(first.label, first.tasks, seconds, cpu_seconds, first.calls)


def print_row(drain: Drain, raw: Drain) -> None:
    sqs = drain.per_task("AmazonSQS")
    print(
        f"  {drain.label:<52} {drain.rate:>8,.0f} {drain.rate / raw.rate:>8.2f} "
        f"{drain.cpu_us:>12,.0f} {drain.cpu_us / raw.cpu_us:>8.2f} {sqs:>9.3f}"
    )


def print_costs(modes: list[Drain], n: int) -> None:
    """AWS requests per task and cost per million tasks, as a worker and as a Lambda function.
    Each task is also sent once (one SendMessage by ``.delay()``) and its result read by
    nobody (add half an RRU per ``AsyncResult.get`` poll)."""
    PRICES = prices()  # noqa: N806
    print(
        "\nCost per million tasks (cloudq.ops.prices: SQS $0.40/M requests, DynamoDB on-demand "
        "$0.625/M WRU, $0.125/M RRU, Lambda $0.20/M requests + $0.0000166667/GB-s)"
    )
    columns = ("SQS/task", "WRU/task", "RRU/task", "worker $/M", "Lambda $/M")
    print(f"  {'mode':<40} " + " ".join(f"{name:>11}" for name in columns))
    for drain in modes:
        sqs = drain.per_task("AmazonSQS") + 1  # + the producer's send
        wru = drain.per_task("DynamoDB", WRITE_OPERATIONS)
        rru = drain.per_task("DynamoDB", READ_OPERATIONS) / 2
        storage = wru * PRICES["dynamodb_wru"] + rru * PRICES["dynamodb_rru"]
        worker = sqs * PRICES["sqs_request"] + storage
        # Lambda: the event source mapping receives and deletes in batches (billed as SQS
        # requests), one invocation per batch.
        lambda_sqs = 1 + 2 / LAMBDA_BATCH
        invocations = 1 / LAMBDA_BATCH
        compute = invocations * (
            PRICES["lambda_request"] + LAMBDA_GB * LAMBDA_SECONDS_PER_BATCH * PRICES["lambda_gb_second"]
        )
        on_lambda = lambda_sqs * PRICES["sqs_request"] + storage + compute
        label = drain.label.split("(")[-1].rstrip(")")
        figures = (f"{sqs:.3f}", f"{wru:.2f}", f"{rru:.2f}", f"{worker * 1e6:.2f}", f"{on_lambda * 1e6:.2f}")
        print(f"  {label:<40} " + " ".join(f"{figure:>11}" for figure in figures))


if __name__ == "__main__":
    main()
