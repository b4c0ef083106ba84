"""What a worker says: one line per task outcome, JSON lines that carry the task id and name,
a banner naming where the broker is, and ``--debug`` without the AWS SDK's wire logs."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

from cloudq import CloudQ
from cloudq.ops.dead_letters import list_dead_letters
from tests.e2e.conftest import WorkerFactory
from tests.processes import wait_until, worker_log


def _json_lines(tmp_path: Path, index: int = 0) -> list[dict[str, Any]]:
    """Every line of the worker's output, parsed (a line that is not JSON fails the test)."""
    return [json.loads(line) for line in worker_log(tmp_path, index).splitlines() if line.strip()]


def _stop(worker: Any) -> None:
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=15)


def test_json_logs_carry_one_outcome_line_per_task_with_its_id_and_name(
    e2e_app: CloudQ, start_worker: WorkerFactory, tmp_path: Path, e2e_env: dict[str, str]
) -> None:
    # Given a worker logging JSON
    worker = start_worker("-c", "2", "--log-format", "json")
    # When it runs a task that succeeds and one that fails 3 times (max_retries=2)
    ok = e2e_app.tasks["add"].delay(1, 2)
    failing = e2e_app.tasks["always_fails"].delay("logged")
    assert ok.get(timeout=30) == 3
    assert wait_until(lambda: len(list_dead_letters(e2e_app, "default")) == 1, 60)
    time.sleep(0.5)
    _stop(worker)
    lines = _json_lines(tmp_path)
    # Then every line is JSON; the banner names the broker's region and endpoint
    [banner] = [line for line in lines if line["message"].startswith("cloudq worker:")]
    assert f"region us-east-1 at {e2e_env['AWS_ENDPOINT_URL']}" in banner["message"]
    # and the successful task has exactly one line, carrying its id and name
    [success] = [line for line in lines if line.get("task_id") == ok.id]
    assert success["task_name"] == "add" and success["level"] == "INFO"
    assert "SUCCESS" in success["message"] and "(attempt 1)" in success["message"]
    # and the failing one a line per attempt: two retries, then the dead-lettering, whose
    # message id is the one `cloudq dlq list` shows
    mine = [line for line in lines if line.get("task_id") == failing.id]
    assert [("RETRY" in line["message"], line["task_name"]) for line in mine] == [
        (True, "always_fails"),
        (True, "always_fails"),
        (False, "always_fails"),
    ]
    [letter] = list_dead_letters(e2e_app, "default")
    assert f"as message {letter.message_id}:" in mine[-1]["message"]
    assert "FAILURE (attempt 3)" in mine[-1]["message"]


def test_debug_leaves_out_the_aws_wire_logs_and_debug_aws_adds_them(
    e2e_app: CloudQ, start_worker: WorkerFactory, tmp_path: Path, e2e_env: dict[str, str]
) -> None:
    for index, flag in enumerate(("--debug", "--debug-aws")):
        worker = start_worker("--log-format", "json", global_args=(flag,))
        assert e2e_app.tasks["add"].delay(index, 1).get(timeout=30) == index + 1
        _stop(worker)
        loggers = {line["logger"].split(".")[0] for line in _json_lines(tmp_path, index)}
        if flag == "--debug":
            assert "cloudq" in loggers and not loggers & {"botocore", "urllib3", "boto3"}, loggers
        else:
            assert "botocore" in loggers


def test_with_metrics_on_a_worker_writes_one_emf_line_per_run_to_stdout(
    e2e_app: CloudQ, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    # Given a worker with CLOUDQ_METRICS=1
    worker = start_worker("-c", "2", env={"CLOUDQ_METRICS": "1"})
    # When it runs two tasks
    results = [e2e_app.tasks["add"].delay(i, 1) for i in range(2)]
    assert [result.get(timeout=30) for result in results] == [1, 2]

    # Then their EMF lines come out (with the worker's batched deletes, not only at exit)
    def emf() -> list[dict[str, Any]]:
        return [json.loads(line) for line in worker_log(tmp_path).splitlines() if line.startswith('{"_aws"')]

    assert wait_until(lambda: len(emf()) == 2, 10)
    _stop(worker)
    assert [(line["Task"], line["TaskSucceeded"], line["Queue"]) for line in emf()] == [
        ("add", 1, "default")
    ] * 2
    assert all(line["App"] == e2e_app.name and line["QueueWaitTime"] >= 0 for line in emf())
