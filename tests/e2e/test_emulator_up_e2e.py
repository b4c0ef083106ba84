"""``cloudq emulator up --app``: the server stays up, the app is provisioned and its Lambda
worker deployed, a live line counts invocations, and Ctrl-C stops everything."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import boto3
import pytest

from cloudq_emulator.server import FAKE_CREDENTIALS, MinistackServer, free_port
from tests.tasks import make_app

CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


class Lines:
    """The stdout of a process, line by line, without blocking the test."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        assert process.stdout is not None
        stream = process.stdout
        threading.Thread(
            target=lambda: [self._queue.put(line.rstrip("\n")) for line in stream], daemon=True
        ).start()

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} not printed in {timeout} s; got: {self.seen}")


def _up(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cloudq", "emulator", "up", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def up_env(tmp_path: object) -> Iterator[dict[str, str]]:
    name = f"up{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "CLOUDQ_TEST_APP": name,
        "CLOUDQ_LAMBDA_QUEUES": "default",
        "CLOUDQ_LAMBDA_TIMEOUT": "5",
    }
    env.pop("AWS_ENDPOINT_URL", None)
    yield env


def test_up_runs_the_apps_tasks_through_its_lambda_trigger_until_ctrl_c(
    up_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    process = _up("--app", "tests.tasks:app", "--port", str(port), env=up_env)
    try:
        lines = Lines(process)
        # It shows what it started
        name = up_env["CLOUDQ_TEST_APP"]
        lines.wait_for(f"emulator: http://127.0.0.1:{port}")
        lines.wait_for(
            f"queue {name}-default (dead-letter {name}-default-dlq, visibility 30s) → Lambda {name}-worker"
        )
        lines.wait_for(f"table {name}-results")
        function = lines.wait_for(f"function {name}-worker")
        assert "handler cloudq.aws_lambda.handler, CLOUDQ_APP=tests.tasks:app, timeout 5s" in function
        lines.wait_for("Ctrl-C to stop")
        # Boto3 (and so the AWS CLI) reaches it
        for key, value in {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", **FAKE_CREDENTIALS}.items():
            monkeypatch.setenv(key, value)
        urls = boto3.client("sqs").list_queues(QueueNamePrefix=name)["QueueUrls"]
        assert f"http://127.0.0.1:{port}/000000000000/{name}-default" in urls
        # Tasks sent with .delay() run through the deployed function, with no worker running
        app = make_app(name)
        results = [app.tasks["add"].delay(i, 10) for i in range(5)]
        assert [result.get(timeout=30) for result in results] == [10, 11, 12, 13, 14]
        # And the live line counts the invocations
        lines.wait_for("invocations ", timeout=10)
        while not any(
            line.startswith("invocations ") and not line.startswith("invocations 0 ") for line in lines.seen
        ):
            lines.wait_for("invocations ", timeout=10)
    finally:
        # Ctrl-C stops everything
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
    assert process.stderr is not None
    assert (code, process.stderr.read()) == (0, "")
    with pytest.raises(OSError):
        import socket

        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_up_with_a_bad_app_is_one_line_and_stops_the_server(up_env: dict[str, str]) -> None:
    port = free_port()
    process = _up("--app", "no_such_module:app", "--port", str(port), env=up_env)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert err.strip().splitlines() == [
        "cloudq: error: cannot import module 'no_such_module': No module named 'no_such_module'"
    ]


def test_up_on_a_port_in_use_is_one_line(up_env: dict[str, str], ministack_server: MinistackServer) -> None:
    process = _up("--port", str(ministack_server.port), env=up_env)
    _, err = process.communicate(timeout=60)
    assert process.returncode != 0
    [line] = err.strip().splitlines()
    assert f"port {ministack_server.port} is already in use" in line


def test_up_against_a_running_emulator_deploys_or_updates_the_stack_and_exits(
    up_env: dict[str, str], ministack_server: MinistackServer
) -> None:
    from cloudq_emulator.provision import delete_stack

    cloudformation = boto3.client(
        "cloudformation", endpoint_url=ministack_server.endpoint_url, region_name="us-east-1", **CREDENTIALS
    )
    stack = f"{up_env['CLOUDQ_TEST_APP']}-cloudq"
    try:
        for _ in range(2):  # a create, then an update with nothing to change
            # When `emulator up --app` runs against the emulator already on that port
            process = _up("--app", "tests.tasks:app", "--port", str(ministack_server.port), env=up_env)
            out, err = process.communicate(timeout=60)
            # Then it deploys the app's stack there and exits, instead of failing on the port
            assert (process.returncode, err) == (0, "")
            assert (
                f"updated the stack of tests.tasks:app in the emulator at {ministack_server.endpoint_url}"
                in out
            )
            [found] = cloudformation.describe_stacks(StackName=stack)["Stacks"]
            assert found["StackStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE")
    finally:
        delete_stack(cloudformation, stack)
