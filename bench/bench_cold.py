"""Cold start and memory: what ``import cloudq`` adds, the Lambda cold path, an idle worker.

    .venv/bin/python bench/bench_cold.py [--samples 11]

1. ``import cloudq`` in a fresh process right after ``import boto3; from pydantic import
   BaseModel``: its increment (wall and CPU), median of ``--samples`` processes.
2. Lambda cold path on the ministack server (SQS broker, DynamoDB results): in a fresh
   process, after ``import boto3``: import ``cloudq.aws_lambda``, load the app
   (``CLOUDQ_APP``), handle a first event of one record, including the clients it creates;
   against ``import boto3`` + creating one SQS client. Median of ``--samples``.
3. The resident set of an idle ``cloudq worker -c 8`` (VmRSS, 3 s after it started polling),
   and of a bare ``python -c "import boto3; from pydantic import BaseModel"`` for scale.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

IMPORT = """
import time, boto3
from pydantic import BaseModel
wall, cpu = time.perf_counter(), time.process_time()
import cloudq
print(time.perf_counter() - wall, time.process_time() - cpu)
"""

SQS_CLIENT = """
import time
import boto3
wall = time.perf_counter()
boto3.client("sqs")
print(time.perf_counter() - wall)
"""

LAMBDA_PATH = """
import json, os, time
import boto3
wall = time.perf_counter()
import cloudq.aws_lambda as entry
from cloudq.testing import FakeLambdaContext
record = json.loads(os.environ["BENCH_RECORD"])
response = entry.handler({"Records": [record]}, FakeLambdaContext())
elapsed = time.perf_counter() - wall
assert response == {"batchItemFailures": []}, response
print(elapsed)
"""


def fresh(code: str, env: dict[str, str]) -> list[float]:
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    return [float(value) for value in out.stdout.split()]


def medians(code: str, env: dict[str, str], samples: int) -> list[float]:
    runs = [fresh(code, env) for _ in range(samples)]
    return [statistics.median(column) * 1000 for column in zip(*runs, strict=True)]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def idle_worker_rss(env: dict[str, str]) -> float:
    worker = subprocess.Popen(
        [sys.executable, "-m", "cloudq", "worker", "bench.lambda_tasks:app", "-c", "8", "--wait", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        time.sleep(6)  # start-up, then a few idle polls
        assert worker.poll() is None, "the worker exited"
        return rss_mib(worker.pid)
    finally:
        worker.terminate()
        worker.wait(timeout=10)


def bare_rss(env: dict[str, str]) -> float:
    code = "import boto3, pathlib; from pydantic import BaseModel; print(pathlib.Path('/proc/self/status').read_text())"  # noqa: E501
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    line = next(line for line in out.stdout.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=11)
    args = parser.parse_args()

    from cloudq import Message
    from cloudq.infra import app_resources
    from cloudq_emulator.provision import provision
    from cloudq_emulator.server import MinistackServer

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    wall, cpu = medians(IMPORT, env, args.samples)
    print(f"\nimport cloudq after boto3 + pydantic's BaseModel, median of {args.samples} fresh processes")
    print(f"  wall {wall:6.1f} ms   CPU {cpu:6.1f} ms   (target <= 30 ms)")

    with MinistackServer() as server:
        name = f"benchc{uuid.uuid4().hex[:6]}"
        env = {
            **env,
            **server.environment(),
            "CLOUDQ_BENCH_APP": name,
            "CLOUDQ_APP": "bench.lambda_tasks:app",
        }
        os.environ.update({**server.environment(), "CLOUDQ_BENCH_APP": name})
        from bench.lambda_tasks import app

        provision(app_resources(app, "bench.lambda_tasks:app"), endpoint_url=server.endpoint_url)
        physical = app.physical_queue_name("default")
        records = []
        for _ in range(args.samples):
            body = app.encode(Message(task="noop"))
            records.append(
                {
                    "messageId": str(uuid.uuid4()),
                    "receiptHandle": str(uuid.uuid4()),
                    "body": body,
                    "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
                    "eventSourceARN": f"arn:aws:sqs:us-east-1:000000000000:{physical}",
                }
            )
        [client] = medians(SQS_CLIENT, env, args.samples)
        [dynamodb] = medians(SQS_CLIENT.replace('"sqs"', '"dynamodb"'), env, args.samples)
        paths = [
            fresh(LAMBDA_PATH, {**env, "BENCH_RECORD": json.dumps(record)})[0] * 1000 for record in records
        ]
        path = statistics.median(paths)
        print("\nLambda cold path (SQS + DynamoDB results on ministack), after import boto3, median")
        print(f"  create one SQS client                          {client:6.1f} ms")
        print(f"  import cloudq.aws_lambda + load app + 1 record {path:6.1f} ms")
        print(f"  beyond one SQS client                          {path - client:6.1f} ms   (target <= 60 ms)")
        # botocore parses DynamoDB's endpoint rule set (a large JSON file) for its client.
        print(f"  of which the DynamoDB client (results on)      {dynamodb:6.1f} ms")

        rss = idle_worker_rss(env)
        print("\nResident set (VmRSS)")
        print(f"  python + boto3 + pydantic BaseModel            {bare_rss(env):6.1f} MiB")
        print(f"  idle cloudq worker -c 8                        {rss:6.1f} MiB   (target <= 55 MiB)")


if __name__ == "__main__":
    main()
