"""Cold start and memory: what ``import cloudq`` adds, the Lambda cold path, an idle worker.

    .venv/bin/python bench/bench_cold.py [--samples 11]

1. ``import cloudq`` in a fresh process right after ``import boto3; from pydantic import
   BaseModel``: its increment (wall and CPU), median of ``--samples`` processes.
2. Lambda cold path on the ministack server (SQS broker, DynamoDB results): in a fresh
   process, after ``import boto3``: import ``cloudq.aws_lambda``, load the app
   (``CLOUDQ_APP``), handle a first event of one record, including the clients it creates;
   against ``import boto3`` + creating one SQS client. Median of ``--samples``.
3. The resident set of an idle ``cloudq worker -c 8`` on both paths (VmRSS, 6 s after it
   started), and of a bare ``python -c "import boto3; from pydantic import BaseModel"`` for
   scale.
4. The cold path as whole processes, from the start of Python to the first record done, on
   both paths, side by side with ``python -c "import boto3"`` (issue 29's measure).

Figures 1 and 2 are printed twice: first as this shell runs cloudq (with
``PYTHONDONTWRITEBYTECODE`` set, as in a dev shell on an editable install, every fresh process
compiles cloudq from source), then with compiled bytecode, which is what users run and what
the targets are checked against: pip compiles cloudq when it installs it, and the Lambda zip
built as ``infra/README.md`` says carries unchecked-hash bytecode (Lambda's file system is
read-only: it cannot keep what it compiles). Also printed: where the Lambda cold path's time
goes (import, app load, the DynamoDB client, the first event's HTTP round trips, the rest).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cloudq import CloudQ

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

# Lambda's context object, which the runtime hands to the handler: a plain class defined
# before the clock starts. (The path used to import ``cloudq.testing`` for its
# ``FakeLambdaContext``, within the clock: ~0.7 ms that a deployed function never spends.)
CONTEXT = """
class Context:
    function_name = "cloudq-bench"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    def get_remaining_time_in_millis(self):
        return 60_000
"""

LAMBDA_PATH = (
    CONTEXT
    + """
import json, os, time
import boto3
wall = time.perf_counter()
import cloudq.aws_lambda as entry
record = json.loads(os.environ["BENCH_RECORD"])
response = entry.handler({"Records": [record]}, Context())
elapsed = time.perf_counter() - wall
assert response == {"batchItemFailures": []}, response
print(elapsed)
"""
)

# The measure of the cold path (issue 29): a whole fresh process, from the start of
# Python to the first record done, timed by the parent from spawn to exit, side by side with
# a process that only imports boto3. Nothing is imported before, so on the lean path
# (CLOUDQ_AWS_HTTP=lean) the process never loads boto3 or botocore.
FROM_START = (
    CONTEXT
    + """
import json, os, sys
import cloudq.aws_lambda as entry
response = entry.handler({"Records": [json.loads(os.environ["BENCH_RECORD"])]}, Context())
assert response == {"batchItemFailures": []}, response
print(int("botocore" in sys.modules))
"""
)

# The same path in steps, the result backend's client (DynamoDB) made before the first event
# rather than by it. The event's HTTP requests are timed, and its new clients counted, by
# wrapping botocore's ``URLLib3Session.send`` and ``Session.create_client`` (measurement only).
LAMBDA_STEPS = (
    CONTEXT
    + """
import json, os, time
import boto3
import botocore.httpsession, botocore.session
spent = {"http": 0.0, "requests": 0, "clients": 0}
send, create_client = botocore.httpsession.URLLib3Session.send, botocore.session.Session.create_client
def timed_send(*args, **kwargs):
    start = time.perf_counter()
    try:
        return send(*args, **kwargs)
    finally:
        spent["http"] += time.perf_counter() - start
        spent["requests"] += 1
def counted_create_client(*args, **kwargs):
    spent["clients"] += 1
    return create_client(*args, **kwargs)
botocore.httpsession.URLLib3Session.send = timed_send
botocore.session.Session.create_client = counted_create_client
start = time.perf_counter()
import cloudq.aws_lambda as entry
imported = time.perf_counter()
assert entry.handler({"Records": []}, Context()) == {"batchItemFailures": []}  # loads CLOUDQ_APP
loaded = time.perf_counter()
from cloudq.app.loading import load_app
load_app(os.environ["CLOUDQ_APP"]).backend  # the app the handler loaded: its DynamoDB client
backend = time.perf_counter()
spent.update(http=0.0, requests=0, clients=0)
record = json.loads(os.environ["BENCH_RECORD"])
response = entry.handler({"Records": [record]}, Context())
done = time.perf_counter()
assert response == {"batchItemFailures": []}, response
print(imported - start, loaded - imported, backend - loaded, done - backend, spent["http"],
      spent["requests"], spent["clients"])
"""
)


#: What the first figures are: this shell's bytecode setting decides.
SOURCE_NOTE = (
    "from source: PYTHONDONTWRITEBYTECODE is set"
    if os.environ.get("PYTHONDONTWRITEBYTECODE")
    else "bytecode written by earlier runs, if any"
)


def fresh(code: str, env: dict[str, str]) -> list[float]:
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    return [float(value) for value in out.stdout.split()]


def whole(code: str, env: dict[str, str]) -> tuple[float, str]:
    """Milliseconds from spawning ``python -c code`` to its exit, and what it printed."""
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    return (time.perf_counter() - started) * 1000, out.stdout.strip()


def from_start(env: dict[str, str], app: CloudQ, samples: int) -> None:
    """The cold path as whole processes (``FROM_START``) on both paths, alternating with
    ``import boto3`` alone and an empty interpreter, medians of ``samples``."""
    rows: dict[str, list[float]] = {"python": [], "boto3": [], "lean": [], "boto3 path": []}
    loaded: dict[str, set[str]] = {"lean": set(), "boto3 path": set()}
    records = iter(new_records(app, 2 * samples))
    for _ in range(samples):
        rows["python"].append(whole("pass", env)[0])
        rows["boto3"].append(whole("import boto3", env)[0])
        for label, http in (("lean", "lean"), ("boto3 path", "boto3")):
            record = json.dumps(next(records))
            spent, printed = whole(FROM_START, {**env, "CLOUDQ_AWS_HTTP": http, "BENCH_RECORD": record})
            rows[label].append(spent)
            loaded[label].add(printed)
    median = {label: statistics.median(values) for label, values in rows.items()}
    print(
        f"\nLambda cold path as whole processes (bytecode), from spawn to exit, medians of {samples}, "
        "alternating"
    )
    print(f"  python -c pass                                 {median['python']:6.1f} ms")
    print(f"  python -c 'import boto3'                       {median['boto3']:6.1f} ms")
    for label in ("lean", "boto3 path"):
        botocore = "botocore imported" if loaded[label] != {"0"} else "botocore not imported"
        ratio = median[label] / median["boto3"]
        print(
            f"  import, app load, 1 record ({label + ')':<11}       {median[label]:6.1f} ms   "
            f"({ratio:.2f}x import boto3; {botocore})"
        )
    print("  (target on the lean path: <= import boto3 alone)")


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


def with_bytecode(env: dict[str, str], cache: str) -> dict[str, str]:
    """``env`` with bytecode written to and read from ``cache`` (the caller warms it)."""
    return {
        **{name: value for name, value in env.items() if name != "PYTHONDONTWRITEBYTECODE"},
        "PYTHONPYCACHEPREFIX": cache,
    }


def print_lambda_steps(env: dict[str, str], records: list[dict[str, object]]) -> None:
    """Where the cold path's time goes: the same path in steps (``LAMBDA_STEPS``)."""
    rows = [fresh(LAMBDA_STEPS, {**env, "BENCH_RECORD": json.dumps(record)}) for record in records]
    (imported, loaded, backend, event, http, requests, clients) = [
        statistics.median(column) for column in zip(*rows, strict=True)
    ]
    print("  where it goes (the same path in steps, medians):")
    print(f"    import cloudq.aws_lambda (pydantic included)  {imported * 1000:6.1f} ms")
    print(f"    load the app (CLOUDQ_APP)                     {loaded * 1000:6.1f} ms")
    print(f"    the result backend's DynamoDB client          {backend * 1000:6.1f} ms")
    print(f"    first event of one record                     {event * 1000:6.1f} ms, of which")
    print(f"      {requests:.0f} HTTP request(s) to the server            {http * 1000:6.1f} ms")
    print(f"      the rest (decode, models built, run, record) {(event - http) * 1000:6.1f} ms")
    print(f"      (clients it created: {clients:.0f})")


def new_records(app: CloudQ, count: int) -> list[dict[str, object]]:
    """SQS event records of new no-op tasks (each task id runs once: a record seen before
    would be acknowledged without running)."""
    from cloudq import Message

    physical = app.physical_queue_name("default")
    return [
        {
            "messageId": str(uuid.uuid4()),
            "receiptHandle": str(uuid.uuid4()),
            "body": app.encode(Message(task="noop")),
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
            "eventSourceARN": f"arn:aws:sqs:us-east-1:000000000000:{physical}",
        }
        for _ in range(count)
    ]


def cold_paths(env: dict[str, str], app: CloudQ, samples: int) -> list[float]:
    """The Lambda cold path of ``samples`` fresh processes, in ms."""
    return [
        fresh(LAMBDA_PATH, {**env, "BENCH_RECORD": json.dumps(record)})[0] * 1000
        for record in new_records(app, samples)
    ]


def lambda_figures(env: dict[str, str], app: CloudQ, samples: int) -> None:
    [client] = medians(SQS_CLIENT, env, samples)
    [dynamodb] = medians(SQS_CLIENT.replace('"sqs"', '"dynamodb"'), env, samples)
    path = statistics.median(cold_paths(env, app, samples))
    print(
        f"\nLambda cold path (SQS + DynamoDB results on ministack), after import boto3, median; {SOURCE_NOTE}"
    )
    print(f"  create one SQS client                          {client:6.1f} ms")
    print(f"  import cloudq.aws_lambda + load app + 1 record {path:6.1f} ms")
    print(f"  beyond one SQS client                          {path - client:6.1f} ms")
    # botocore parses DynamoDB's endpoint rule set (a large JSON file) for its client.
    print(f"  of which the DynamoDB client (results on)      {dynamodb:6.1f} ms")
    print_lambda_steps(env, new_records(app, samples))

    with tempfile.TemporaryDirectory(prefix="cloudq-bytecode-") as cache:
        compiled = with_bytecode(env, cache)
        cold_paths(compiled, app, 1)  # writes the bytecode
        [compiled_import, _] = medians(IMPORT, compiled, samples)
        [compiled_client] = medians(SQS_CLIENT, compiled, samples)
        compiled_path = statistics.median(cold_paths(compiled, app, samples))
        print(
            "\nThe same with compiled bytecode, medians: as pip installs cloudq, and as the Lambda "
            "zip of infra/README.md carries it (the targets)"
        )
        print(
            f"  import cloudq after boto3 + BaseModel, wall    {compiled_import:6.1f} ms   (target <= 30 ms)"
        )
        print(f"  create one SQS client                          {compiled_client:6.1f} ms")
        print(f"  import cloudq.aws_lambda + load app + 1 record {compiled_path:6.1f} ms")
        beyond = compiled_path - compiled_client
        print(f"  beyond one SQS client                          {beyond:6.1f} ms   (target <= 60 ms)")
        for http in ("lean", "boto3"):  # the lean path's own modules' bytecode too
            record = json.dumps(new_records(app, 1)[0])
            whole(FROM_START, {**compiled, "CLOUDQ_AWS_HTTP": http, "BENCH_RECORD": record})
        from_start(compiled, app, samples)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=11)
    args = parser.parse_args()

    from cloudq.infra import app_resources
    from cloudq_emulator.provision import provision
    from cloudq_emulator.server import MinistackServer

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    wall, cpu = medians(IMPORT, env, args.samples)
    print(f"\nimport cloudq after boto3 + pydantic's BaseModel, median of {args.samples} fresh processes")
    print(f"  wall {wall:6.1f} ms   CPU {cpu:6.1f} ms   ({SOURCE_NOTE})")

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
        # As on Lambda, which names the function (with CLOUDQ_AWS_HTTP=lean, the handler's
        # clients then come from the environment alone: cloudq.core.aws.environment_alone).
        lambda_figures({**env, "AWS_LAMBDA_FUNCTION_NAME": "cloudq-bench"}, app, args.samples)

        boto3_rss = idle_worker_rss({**env, "CLOUDQ_AWS_HTTP": "boto3"})
        lean_rss = idle_worker_rss({**env, "CLOUDQ_AWS_HTTP": "lean"})
        print("\nResident set (VmRSS)")
        print(f"  python + boto3 + pydantic BaseModel            {bare_rss(env):6.1f} MiB")
        print(f"  idle cloudq worker -c 8, boto3 path            {boto3_rss:6.1f} MiB")
        print(f"  idle cloudq worker -c 8, lean path             {lean_rss:6.1f} MiB   (target <= 50 MiB)")
        print("  (the lean path's clients from the environment's keys: no boto3 client made)")


if __name__ == "__main__":
    main()
