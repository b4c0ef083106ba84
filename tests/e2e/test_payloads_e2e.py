"""Large arguments and results through S3 on the emulator: a 2 MB argument and a 600 KB result
round-trip through ``.delay()`` → a worker process or the Lambda function → ``.get()``, the SQS
body being a small pointer and the argument object gone after success; a missing object and a
replaced one (signing on) end as FAILURE in the dead-letter queue."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from cloudq import CloudQ, TaskError
from cloudq.infra import app_resources
from cloudq.ops.dead_letters import list_dead_letters
from cloudq_emulator.provision import provision
from cloudq_emulator.server import MinistackServer
from tests.e2e.conftest import LambdaFactory, WorkerFactory
from tests.tasks import make_app

BIG = "x" * 2_000_000
REPORT = {"report": "r" * 600_000}


def _store_url(e2e_env: dict[str, str]) -> str:
    return f"s3://{e2e_env['CLOUDQ_TEST_APP'].lower()}-payloads/cloudq"


def _configure(e2e_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, **settings: str) -> None:
    """Set CLOUDQ_* settings for this test and its worker processes (and the function)."""
    settings = {"CLOUDQ_PAYLOAD_STORE": _store_url(e2e_env), **settings}
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
        e2e_env[key] = value


@pytest.fixture
def payload_app(
    e2e_env: dict[str, str], ministack_server: MinistackServer, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., CloudQ]:
    """``payload_app(**settings)``: the test tasks with a payload bucket, provisioned."""

    def build(**settings: str) -> CloudQ:
        _configure(e2e_env, monkeypatch, **settings)
        app = make_app(e2e_env["CLOUDQ_TEST_APP"])
        provision(app_resources(app), endpoint_url=ministack_server.endpoint_url)
        return app

    return build


def _bucket(app: CloudQ) -> tuple[Any, str]:
    resources = app_resources(app)
    assert resources.bucket is not None
    return boto3.client("s3"), resources.bucket.name


def _keys(app: CloudQ) -> list[str]:
    s3, bucket = _bucket(app)
    return [item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def _waiting_bodies(app: CloudQ, queue: str = "default") -> list[str]:
    """The bodies waiting in ``queue``, read and handed back at once."""
    got = app.transport.receive(queue, 10, wait_seconds=1)
    for message in got:
        app.transport.change_visibility(queue, message.receipt_handle, 0)
    return [message.body for message in got]


def test_a_2mb_argument_and_a_600kb_result_round_trip_through_a_worker(
    payload_app: Callable[..., CloudQ], start_worker: WorkerFactory
) -> None:
    # Given the test app with a payload bucket
    app = payload_app()
    # When a 2 MB argument and a 600 KB result are sent
    large = app.tasks["echo"].delay(BIG)
    report = app.tasks["echo"].delay(REPORT)
    # Then the 2 MB message is a small version 3 pointer in SQS
    bodies = sorted(_waiting_bodies(app), key=len)
    assert len(bodies) == 2 and len(bodies[0]) < 1024 and json.loads(bodies[0])["v"] == 3
    # And a worker process runs both; .get() returns the whole values
    start_worker("-c", "2")
    assert large.get(timeout=60) == BIG
    assert report.get(timeout=60) == REPORT
    # And only the two result objects are left in the bucket: the argument object is gone
    assert sorted(key.split("/")[1] for key in _keys(app)) == ["results", "results"]


def test_a_missing_object_fails_the_task_with_the_reason_into_the_dlq(
    payload_app: Callable[..., CloudQ], start_worker: WorkerFactory
) -> None:
    app = payload_app()
    result = app.tasks["echo"].delay(BIG)
    # Given the argument object is gone before the task runs
    s3, bucket = _bucket(app)
    (key,) = _keys(app)
    s3.delete_object(Bucket=bucket, Key=key)
    # When a worker takes the message
    start_worker()
    # Then the task fails with the reason, once, and its message is in the dead-letter queue
    with pytest.raises(TaskError) as failure:
        result.get(timeout=60)
    assert failure.value.error_type == "PayloadMissingError" and key in failure.value.error_message
    (letter,) = list_dead_letters(app, "default")
    assert letter.task_id == result.id and "PayloadMissingError" in letter.reason


def test_a_replaced_object_is_a_signature_error_into_the_dlq(
    payload_app: Callable[..., CloudQ], start_worker: WorkerFactory
) -> None:
    app = payload_app(CLOUDQ_SIGNING_KEYS="secret-1")
    result = app.tasks["echo"].delay(BIG)
    # Given someone replaced the argument object with one of the same size
    s3, bucket = _bucket(app)
    (key,) = _keys(app)
    forged = json.dumps({"args": ["y" * 2_000_000], "kwargs": {}}).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=forged)
    start_worker()
    with pytest.raises(TaskError) as failure:
        result.get(timeout=60)
    assert failure.value.error_type == "SignatureError"
    (letter,) = list_dead_letters(app, "default")
    assert "SignatureError" in letter.reason


def test_a_2mb_argument_and_a_600kb_result_round_trip_through_the_lambda_function(
    e2e_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, lambda_app: LambdaFactory
) -> None:
    # Given the function deployed with the payload store in its environment
    _configure(e2e_env, monkeypatch)
    app = lambda_app(timeout=10)
    # When large values are sent to its queue
    large = app.tasks["echo"].delay(BIG)
    report = app.tasks["echo"].delay(REPORT)
    # Then the function resolves the pointer and stores the large results in the bucket
    assert large.get(timeout=60) == BIG
    assert report.get(timeout=60) == REPORT
    assert sorted(key.split("/")[1] for key in _keys(app)) == ["results", "results"]
