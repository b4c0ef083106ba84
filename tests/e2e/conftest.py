"""End-to-end fixtures: the ministack server (from the cloudq-emulator pytest plugin), a
freshly provisioned app per test, and real ``cloudq worker`` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cloudq import CloudQ
from cloudq.infra import app_resources
from cloudq_emulator.provision import provision
from cloudq_emulator.server import MinistackServer
from tests.tasks import make_app

WorkerFactory = Callable[..., subprocess.Popen[str]]


@pytest.fixture
def e2e_env(
    ministack_server: MinistackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """Environment of this test and its worker processes: AWS pointed at the emulator, a
    unique app name, and a folder where tasks record their side effects."""
    name = f"e2e{uuid.uuid4().hex[:10]}"
    env = {
        **ministack_server.environment(),
        "CLOUDQ_TEST_APP": name,
        "CLOUDQ_TEST_LOG_DIR": str(tmp_path),
        "CLOUDQ_WAIT_SECONDS": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, **env}


@pytest.fixture
def e2e_app(e2e_env: dict[str, str], ministack_server: MinistackServer) -> CloudQ:
    """The test tasks on SQS + DynamoDB in the emulator, provisioned."""
    app = make_app(e2e_env["CLOUDQ_TEST_APP"])
    provision(app_resources(app), endpoint_url=ministack_server.endpoint_url)
    return app


@pytest.fixture
def start_worker(e2e_env: dict[str, str], tmp_path: Path) -> Iterator[WorkerFactory]:
    """Start ``cloudq worker tests.tasks:app`` processes; all are stopped at the end."""
    processes: list[subprocess.Popen[str]] = []

    def start(*extra: str) -> subprocess.Popen[str]:
        log = open(tmp_path / f"worker-{len(processes)}.log", "w")  # noqa: SIM115
        command = [sys.executable, "-m", "cloudq", "worker", "tests.tasks:app", *extra]
        process = subprocess.Popen(command, env=e2e_env, stdout=log, stderr=subprocess.STDOUT, text=True)
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def side_effects(env: dict[str, str], name: str) -> list[str]:
    path = Path(env["CLOUDQ_TEST_LOG_DIR"]) / name
    return path.read_text().splitlines() if path.exists() else []


def wait_for_side_effect(env: dict[str, str], name: str, timeout: float = 30) -> list[str]:
    """Poll until the task ``name`` has recorded a side effect (it started), then return them."""
    deadline = time.monotonic() + timeout
    while not side_effects(env, name) and time.monotonic() < deadline:
        time.sleep(0.05)
    return side_effects(env, name)


LambdaFactory = Callable[..., CloudQ]


@pytest.fixture
def lambda_app(
    e2e_env: dict[str, str], ministack_server: MinistackServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LambdaFactory]:
    """``lambda_app(queues="default", timeout=3, visibility=None, batch_size=10,
    concurrency=None)``: the test tasks provisioned
    with the app's Lambda worker deployed into the emulator, whose trigger then runs them.
    ``visibility`` overrides the Lambda queues' visibility timeout after provisioning.
    The mappings are deleted at the end, so nothing keeps invoking after the test."""
    import boto3

    from cloudq_emulator.lambda_deploy import DeployedFunction, deploy_function

    deployed: list[DeployedFunction] = []

    def deploy(
        queues: str = "default",
        timeout: int = 3,
        visibility: int | None = None,
        batch_size: int = 10,
        concurrency: int | None = None,
    ) -> CloudQ:
        monkeypatch.setenv("CLOUDQ_LAMBDA_QUEUES", queues)
        monkeypatch.setenv("CLOUDQ_LAMBDA_TIMEOUT", str(timeout))
        monkeypatch.setenv("CLOUDQ_LAMBDA_BATCH_SIZE", str(batch_size))
        if concurrency is not None:
            monkeypatch.setenv("CLOUDQ_LAMBDA_MAXIMUM_CONCURRENCY", str(concurrency))
        app = make_app(e2e_env["CLOUDQ_TEST_APP"])
        resources = app_resources(app, "tests.tasks:app")
        provision(resources, endpoint_url=ministack_server.endpoint_url)
        if visibility is not None:
            sqs = boto3.client("sqs")
            for logical in app.settings.lambda_queues:
                url = sqs.get_queue_url(QueueName=app.physical_queue_name(logical))["QueueUrl"]
                sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": str(visibility)})
        function = deploy_function(resources, endpoint_url=ministack_server.endpoint_url)
        assert function is not None
        deployed.append(function)
        return app

    yield deploy
    lam = boto3.client("lambda")
    for function in deployed:
        for mapping in function.mappings.values():
            lam.delete_event_source_mapping(UUID=mapping)
        lam.delete_function(FunctionName=function.name)
