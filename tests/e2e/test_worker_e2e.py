"""A real ``cloudq worker`` process against SQS and DynamoDB on the ministack server."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import boto3
import pytest

from cloudq import CloudQ, State, TaskError
from tests.e2e.conftest import WorkerFactory, side_effects, wait_for_side_effect
from tests.processes import dead_letter_note


def _sqs() -> object:
    return boto3.client("sqs")


def _dead_letters(app: CloudQ, queue: str = "default", wait: float = 10) -> list[tuple[str, str]]:
    """(body, reason) of the messages in a queue's DLQ, read with plain boto3."""
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=app.physical_queue_name(f"{queue}-dlq"))["QueueUrl"]
    got = sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=int(wait),
        MessageAttributeNames=["All"],
    ).get("Messages", [])
    notes = [(m["Body"], dead_letter_note(m)) for m in got]
    return [(body, note.reason if note else "(no note)") for body, note in notes]


def test_delay_to_get_through_a_worker_process(e2e_app: CloudQ, start_worker: WorkerFactory) -> None:
    # Given a worker process
    start_worker("-c", "4")
    # When a web backend sends tasks
    results = [e2e_app.tasks["add"].delay(i, i) for i in range(20)]
    # Then every result arrives in DynamoDB
    assert [result.get(timeout=30) for result in results] == [2 * i for i in range(20)]
    record = e2e_app.backend.get(results[0].id)  # type: ignore[union-attr]
    assert record is not None and record.state is State.SUCCESS and record.expires_at


def test_garbage_goes_to_the_dlq_with_a_reason_and_the_next_task_runs(
    e2e_app: CloudQ, start_worker: WorkerFactory
) -> None:
    # Given a garbage body sent with plain boto3
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=e2e_app.physical_queue_name("default"))["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="this is not a task {")
    start_worker()
    # When a valid task follows
    result = e2e_app.tasks["add"].delay(40, 2)
    # Then the task runs, and the garbage is in the DLQ with a reason
    assert result.get(timeout=30) == 42
    [(body, reason)] = _dead_letters(e2e_app)
    assert body == "this is not a task {"
    assert reason.startswith("DecodeError")


def test_a_task_failing_every_time_runs_3_times_then_is_in_the_dlq(
    e2e_app: CloudQ, start_worker: WorkerFactory, e2e_env: dict[str, str]
) -> None:
    start_worker()
    result = e2e_app.tasks["always_fails"].delay("e2e")  # max_retries=2, no backoff delay
    with pytest.raises(TaskError) as raised:
        result.get(timeout=60)
    assert raised.value.error_type == "FlakyError"
    assert side_effects(e2e_env, "always_fails") == ["e2e"] * 3
    [(body, reason)] = _dead_letters(e2e_app)
    assert json.loads(body)["id"] == result.id
    assert "gave up after 3 attempts" in reason


def test_a_killed_workers_task_reappears_after_the_visibility_timeout(
    e2e_app: CloudQ, start_worker: WorkerFactory, e2e_env: dict[str, str]
) -> None:
    # Given a worker running a 4 s task with a 2 s visibility timeout
    victim = start_worker("--visibility-timeout", "2")
    result = e2e_app.tasks["sleep"].delay(4.0, "survivor")
    wait_for_side_effect(e2e_env, "sleep")
    # When the worker is killed mid-task
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = time.monotonic()
    start_worker("--visibility-timeout", "2")
    # Then the message comes back after the visibility timeout and the task completes
    assert result.get(timeout=60) == "survivor"
    assert side_effects(e2e_env, "sleep") == ["survivor", "survivor"]
    assert time.monotonic() - killed_at >= 2
    assert e2e_app.AsyncResult(result.id).record().attempts == 2  # type: ignore[union-attr]


def test_the_heartbeat_keeps_a_task_3x_the_visibility_timeout_from_running_twice_on_sqs(
    e2e_app: CloudQ, start_worker: WorkerFactory, e2e_env: dict[str, str]
) -> None:
    # Given two worker processes whose received messages are hidden for 2 s
    start_worker("--visibility-timeout", "2")
    start_worker("--visibility-timeout", "2")
    # When a task runs for 6 s, three times the visibility timeout
    result = e2e_app.tasks["sleep"].delay(6.0, "long")
    # Then it completes, and ran exactly once: the heartbeat kept its message hidden
    assert result.get(timeout=60) == "long"
    time.sleep(2.5)  # a redelivery the heartbeat missed would have started by now
    assert side_effects(e2e_env, "sleep") == ["long"]
    assert e2e_app.AsyncResult(result.id).record().attempts == 1  # type: ignore[union-attr]


def test_a_missing_queue_is_one_line_naming_it_and_the_fix(e2e_env: dict[str, str]) -> None:
    env = {**e2e_env, "CLOUDQ_TEST_APP": "neverprovisioned"}
    done = subprocess.run(
        [sys.executable, "-m", "cloudq", "worker", "tests.tasks:app"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "queue 'neverprovisioned-default' does not exist" in done.stderr
    assert "cloudq emulator up" in done.stderr
    assert "Traceback" not in done.stderr


def test_no_credentials_is_one_line_and_exit_2(e2e_env: dict[str, str], tmp_path: object) -> None:
    env = {k: v for k, v in e2e_env.items() if not k.startswith("AWS_") or k == "AWS_ENDPOINT_URL"}
    env["AWS_DEFAULT_REGION"] = "us-east-1"
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = "/nonexistent"
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    done = subprocess.run(
        [sys.executable, "-m", "cloudq", "worker", "tests.tasks:app"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "credentials" in done.stderr.lower()
    assert "Traceback" not in done.stderr
