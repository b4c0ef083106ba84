"""The example app, deployed from its rendered template as a CloudFormation stack in ministack,
runs end to end: ``.delay()`` → worker process → result, ``.delay()`` → the Lambda function
through its mapping → result, and poison ends in the dead-letter queues. The physical names
come from DescribeStackResources, never from the naming rules.

Every AWS call the producer (this process), the worker process and the Lambda function make
is counted at the HTTP level (``bench.counting_proxy``, one proxy each), and checked against
the rendered IAM: each call is allowed, and each allowed action is called or documented as
required (``cloudq.infra.iam.DOCUMENTED_REQUIRED``).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from bench.counting_proxy import CountingProxy
from cloudq import chord, group
from cloudq.infra import app_resources
from cloudq.infra.iam import DOCUMENTED_REQUIRED, iam_documents
from cloudq_emulator.provision import Deployment, provision
from cloudq_emulator.server import MinistackServer
from tests.processes import wait_until

EXAMPLE = "examples.shop.tasks:app"
ROOT = Path(__file__).resolve().parents[2]
GARBAGE = "this is not a task {"
#: 2 MB of items: its message and its result go through the payload bucket.
CATALOGUE = [{"sku": f"sku-{i:06d}", "cost": 10.0, "text": "x" * 80} for i in range(20_000)]


@dataclass
class Run:
    deployment: Deployment
    results: dict[str, Any]
    #: X-Amz-Target → count, per caller
    calls: dict[str, Counter[str]]
    dead_letters: dict[str, list[str]]
    ttl: dict[str, Any]
    #: The payload bucket after the run: its object keys and its lifecycle rules.
    objects: list[str]
    lifecycle: list[dict[str, Any]]


def _fresh_example(monkeypatch: pytest.MonkeyPatch, endpoint_url: str) -> Any:
    """The example module imported anew, so its app's clients go to ``endpoint_url``."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint_url)
    for name in list(os.environ):
        if name.startswith("CLOUDQ_"):
            monkeypatch.delenv(name)
    sys.modules.pop("examples.shop.tasks", None)
    return importlib.import_module("examples.shop.tasks")


def sqs_counts(sqs: Any, url: str) -> tuple[int, int]:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    found = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return int(found[names[0]]), int(found[names[1]])


def _receive_all(sqs: Any, url: str, expected: int, timeout: float = 30) -> list[str]:
    bodies: list[str] = []
    deadline = time.monotonic() + timeout
    while len(bodies) < expected and time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        bodies += [message["Body"] for message in got.get("Messages", [])]
    return bodies


@pytest.fixture(scope="module")
def run(ministack_server: MinistackServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """Deploy the example app's stack, then play the scenario once; the tests check its parts."""
    monkeypatch = pytest.MonkeyPatch()
    proxies = {
        name: CountingProxy(ministack_server.endpoint_url).start()
        for name in ("producer", "worker", "lambda")
    }
    log = tmp_path_factory.mktemp("deploy") / "worker.log"
    worker: subprocess.Popen[bytes] | None = None
    try:
        for key, value in ministack_server.environment().items():
            monkeypatch.setenv(key, value)
        tasks = _fresh_example(monkeypatch, proxies["producer"].endpoint_url)
        # Given the stack deployed from the rendered template (the function's calls go to its proxy)
        resources = app_resources(tasks.app, EXAMPLE)
        deployment = provision(
            resources,
            endpoint_url=ministack_server.endpoint_url,
            function_endpoint_url=proxies["lambda"].endpoint_url,
        )
        for proxy in proxies.values():
            proxy.reset()
        direct = {"endpoint_url": ministack_server.endpoint_url, "region_name": "us-east-1"}
        sqs = boto3.client("sqs", **direct)
        ids = deployment.physical_ids
        # And a worker process on the queues no Lambda function consumes
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": proxies["worker"].endpoint_url,
            "CLOUDQ_WAIT_SECONDS": "1",
        }
        worker = subprocess.Popen(
            [sys.executable, "-m", "cloudq", "worker", EXAMPLE, "-Q", "default", "-c", "2"],
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        # When the web backend sends tasks, and poison arrives on both queues
        sent = {
            "add": tasks.add.delay(2, 3),
            "price_catalogue": tasks.price_catalogue.delay(CATALOGUE),
            "track_parcel": tasks.track_parcel.delay(7),
            "send_welcome": tasks.send_welcome.delay(42),
        }
        sqs.send_message(QueueUrl=ids["DefaultQueue"], MessageBody=GARBAGE)
        sqs.send_message(QueueUrl=ids["EmailsQueue"], MessageBody=GARBAGE)
        # And a chord, and a task sent twice under one id (the second is a duplicate delivery)
        chorded = chord((tasks.add.s(i, i) for i in range(3)), tasks.total.s()).delay()
        twice = str(uuid.uuid4())
        tasks.add.apply_async((1, 1), task_id=twice).get(timeout=60)
        tasks.add.apply_async((1, 1), task_id=twice)
        results = {name: result.get(timeout=60) for name, result in sent.items()}
        # and a request sends one again with the same task id (its idempotency key): the
        # worker acknowledges the duplicate without running it, reading the stored result
        tasks.add.apply_async((2, 3), task_id=sent["add"].id)
        deadline = time.monotonic() + 30
        while "already succeeded" not in log.read_text(errors="replace") and time.monotonic() < deadline:
            time.sleep(0.1)
        results["duplicate acknowledged"] = "already succeeded" in log.read_text(errors="replace")
        results["chord"] = chorded.get(timeout=60)
        assert group(tasks.add.s(i, 0) for i in range(2)).delay().get(timeout=60) == [0, 1]
        assert wait_until(lambda: sqs_counts(sqs, ids["DefaultQueue"]) == (0, 0), timeout=30)
        dead_letters = {
            queue: _receive_all(sqs, ids[f"{queue}DeadLetterQueue"], 1) for queue in ("Default", "Emails")
        }
        ttl = boto3.client("dynamodb", **direct).describe_time_to_live(TableName=ids["ResultTable"])
        s3 = boto3.client("s3", **direct)
        listed = s3.list_objects_v2(Bucket=ids["PayloadBucket"]).get("Contents", [])
        lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=ids["PayloadBucket"])["Rules"]
        worker.terminate()
        worker.wait(timeout=30)
        calls = {name: proxy.reset() for name, proxy in proxies.items()}
        objects = [item["Key"] for item in listed]
        yield Run(deployment, results, calls, dead_letters, ttl["TimeToLiveDescription"], objects, lifecycle)
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
        for proxy in proxies.values():
            proxy.stop()
        sys.modules.pop("examples.shop.tasks", None)
        monkeypatch.undo()


def test_the_stack_holds_what_the_app_uses_under_the_names_it_uses(run: Run) -> None:
    ids = run.deployment.physical_ids
    assert ids["DefaultQueue"].endswith("/shop-default")
    assert ids["DefaultDeadLetterQueue"].endswith("/shop-default-dlq")
    assert ids["EmailsQueue"].endswith("/shop-emails")
    assert (ids["ResultTable"], ids["WorkerFunction"]) == ("shop-results", "shop-worker")
    assert "EmailsMapping" in ids
    # the ECS workers are behind the condition the emulator turns off
    assert not {"WorkerEcsService", "WorkerScalableTarget"} & set(ids)
    # and the TTL the emulator's CloudFormation leaves out was finished by its named step
    assert run.ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}


def test_delay_runs_on_the_worker_and_on_the_lambda_function(run: Run) -> None:
    results = dict(run.results)
    assert results.pop("price_catalogue") == [{**item, "price": 12.0} for item in CATALOGUE]
    assert results == {
        "add": 5,
        "track_parcel": "order 7 shipped",
        "send_welcome": "sent 'welcome' to user 42",
        "duplicate acknowledged": True,
        "chord": 6,
    }
    # the Lambda function did the emails (its proxy saw its calls), the worker the rest
    assert run.calls["lambda"]["DynamoDB_20120810.PutItem"] >= 1
    assert run.calls["worker"]["AmazonSQS.ReceiveMessage"] >= 1


def test_large_payloads_went_through_the_bucket_and_the_argument_object_is_gone(run: Run) -> None:
    # the producer wrote the arguments and read the result; the worker read, wrote and deleted
    assert run.calls["producer"]["S3.PutObject"] == 1 and run.calls["producer"]["S3.GetObject"] == 1
    assert run.calls["worker"]["S3.DeleteObject"] == 1
    # only the result object is left (the bucket's lifecycle rule expires it)
    assert [key.split("/")[:2] for key in run.objects] == [["cloudq", "results"]]
    # the emulator stores the rules (it never expires objects): prefixes and days as rendered
    rules = {
        rule["ID"]: (rule.get("Prefix") or rule.get("Filter", {}).get("Prefix"), rule["Expiration"]["Days"])
        for rule in run.lifecycle
    }
    assert rules == {"cloudq-arguments": ("cloudq/args/", 15), "cloudq-results": ("cloudq/results/", 2)}


def test_poison_ends_in_the_dead_letter_queues(run: Run) -> None:
    assert run.dead_letters == {"Default": [GARBAGE], "Emails": [GARBAGE]}


def iam_action(target: str) -> str:
    """``AmazonSQS.DeleteMessageBatch`` → ``sqs:DeleteMessage``: a batch API is authorised by
    its single action; DynamoDB's ``BatchGetItem`` is an action of its own."""
    prefix, _, operation = target.partition(".")
    service = {"AmazonSQS": "sqs", "DynamoDB_20120810": "dynamodb", "S3": "s3", "AWSStepFunctions": "states"}[
        prefix
    ]
    if service == "sqs":
        operation = operation.removesuffix("Batch")
    return f"{service}:{operation}"


def _allowed(document: dict[str, Any]) -> set[str]:
    return {action for statement in document["Statement"] for action in statement["Action"]}


def test_the_rendered_iam_allows_every_call_made_and_nothing_else(run: Run) -> None:
    documents = iam_documents(app_resources(importlib.import_module("examples.shop.tasks").app, EXAMPLE))
    worker_allowed = _allowed(documents["WorkerRole"]["PolicyDocument"])
    producer_allowed = _allowed(documents["ProducerPolicy"]["PolicyDocument"])
    producer = {iam_action(target) for target in run.calls["producer"]}
    workers = {iam_action(target) for name in ("worker", "lambda") for target in run.calls[name]}
    # Sufficient: every call is allowed to the role or policy of its caller
    assert producer <= producer_allowed, json.dumps(sorted(producer - producer_allowed))
    assert workers <= worker_allowed, json.dumps(sorted(workers - worker_allowed))
    # Minimal: every allowed action is called, or AWS documents it as required
    assert producer_allowed - producer <= set(DOCUMENTED_REQUIRED)
    assert worker_allowed - workers <= set(DOCUMENTED_REQUIRED), sorted(worker_allowed - workers)
