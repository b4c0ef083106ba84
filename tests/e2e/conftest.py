"""End-to-end fixtures: the ministack server (from the emulator's pytest plugin), a freshly
deployed app per test (its rendered template, as a stack), and real ``cloudq worker`` and
``cloudq beat`` processes."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudq import CloudQ
from cloudq.infra import Resources, app_resources
from cloudq_emulator.provision import delete_stack, provision
from cloudq_emulator.server import MinistackServer
from tests.processes import (  # noqa: F401 - re-exported for the e2e tests
    WorkerFactory,
    process_env,
    side_effects,
    wait_for_side_effect,
    worker_processes,
)
from tests.tasks import make_app


@pytest.fixture
def e2e_env(
    ministack_server: MinistackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """Environment of this test and its worker processes (``tests.processes.process_env``)."""
    return process_env(ministack_server, tmp_path, monkeypatch, "e2e")


@pytest.fixture
def e2e_app(e2e_env: dict[str, str], ministack_server: MinistackServer) -> CloudQ:
    """The test tasks on SQS + DynamoDB in the emulator, provisioned."""
    app = make_app(e2e_env["CLOUDQ_TEST_APP"])
    provision(app_resources(app), endpoint_url=ministack_server.endpoint_url)
    return app


@pytest.fixture
def start_worker(e2e_env: dict[str, str], tmp_path: Path) -> Iterator[WorkerFactory]:
    """Start ``cloudq worker tests.tasks:app`` processes; all are stopped at the end."""
    with worker_processes(e2e_env, tmp_path) as start:
        yield start


BeatFactory = Callable[..., "subprocess.Popen[str]"]


@pytest.fixture
def start_beat(e2e_env: dict[str, str], tmp_path: Path) -> Iterator[BeatFactory]:
    """Start ``cloudq beat --app tests.tasks:app`` processes (``start(env={...})`` adds to the
    environment), their output in ``beat-<n>.log``; at the end each gets SIGTERM, then SIGKILL."""
    processes: list[subprocess.Popen[str]] = []

    def start(env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        log = open(tmp_path / f"beat-{len(processes)}.log", "w")  # noqa: SIM115
        command = [sys.executable, "-m", "cloudq", "beat", "--app", "tests.tasks:app"]
        environment = {**e2e_env, **(env or {})}
        process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT, text=True)
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_app(e2e_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[CloudQ]:
    """The test tasks on the real redis-server (broker and results); its keys are deleted at
    the end. Fails, never skips, when the server is down."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"redis-server is not reachable on 127.0.0.1:6379: {exc}", pytrace=False)
    for key in ("CLOUDQ_BROKER", "CLOUDQ_BACKEND"):
        monkeypatch.setenv(key, REDIS_URL)
        e2e_env[key] = REDIS_URL
    name = e2e_env["CLOUDQ_TEST_APP"]
    yield make_app(name)
    keys = list(client.scan_iter(match=f"{name}-*", count=1000))
    if keys:
        client.delete(*keys)


AMQP_QUEUES = ("default", "default-dlq", "orders.fifo", "orders-dlq.fifo")


@pytest.fixture
def amqp_app(e2e_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[CloudQ]:
    """The test tasks on RabbitMQ, results in Redis; fails (never skips) when RabbitMQ is down.
    The app's queues are deleted at the end."""
    from tests.conformance.conftest import AMQP_URL, amqp_transport_or_fail

    for key, url in (("CLOUDQ_BROKER", AMQP_URL), ("CLOUDQ_BACKEND", REDIS_URL)):
        monkeypatch.setenv(key, url)
        e2e_env[key] = url
    name = e2e_env["CLOUDQ_TEST_APP"]
    amqp_transport_or_fail(f"{name}-").close()
    app = make_app(name)
    yield app
    app.transport.close()
    delete_amqp_app_queues(name)
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{name}-*", count=1000))
    if keys:
        client.delete(*keys)


def delete_amqp_app_queues(name: str) -> None:
    channel = amqp_channel()
    for queue in AMQP_QUEUES:
        channel.queue_delete(f"{name}-{queue}")
    channel.connection.close()


def amqp_channel() -> Any:
    import amqp

    connection = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest", connect_timeout=3)
    connection.connect()
    return connection.channel()


@pytest.fixture(params=["sqs-ministack", "redis"])
def engine_app(request: pytest.FixtureRequest) -> CloudQ:
    """The test tasks on SQS + DynamoDB in the emulator, then on Redis."""
    fixture = "e2e_app" if request.param == "sqs-ministack" else "redis_app"
    app: CloudQ = request.getfixturevalue(fixture)
    return app


LambdaFactory = Callable[..., CloudQ]


@pytest.fixture(scope="session")
def lambda_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test tasks' Lambda zip, built once a session: building it takes ~12 s, and the
    code is the same for every deployment (settings reach the function as its environment)."""
    from cloudq_emulator.provision import package_app

    path = tmp_path_factory.mktemp("lambda") / "tests-tasks.zip"
    path.write_bytes(package_app("tests.tasks:app"))
    return path


@pytest.fixture
def lambda_app(
    e2e_env: dict[str, str],
    ministack_server: MinistackServer,
    monkeypatch: pytest.MonkeyPatch,
    lambda_zip: Path,
) -> Iterator[LambdaFactory]:
    """``lambda_app(queues="default", timeout=3, visibility=None, batch_size=10,
    concurrency=None, function_endpoint_url=None)``: the test tasks deployed with the app's
    Lambda worker (the rendered template, as a stack), whose trigger then runs them.
    ``visibility`` overrides the Lambda queues' visibility timeout in the model before
    rendering; ``function_endpoint_url`` is where the function's AWS calls go (a counting
    proxy), by default the emulator. The stacks are deleted at the
    end, so nothing keeps invoking after the test."""
    import boto3

    stacks: list[str] = []

    def deploy(
        queues: str = "default",
        timeout: int = 3,
        visibility: int | None = None,
        batch_size: int = 10,
        concurrency: int | None = None,
        function_endpoint_url: str | None = None,
    ) -> CloudQ:
        monkeypatch.setenv("CLOUDQ_LAMBDA_QUEUES", queues)
        monkeypatch.setenv("CLOUDQ_LAMBDA_TIMEOUT", str(timeout))
        monkeypatch.setenv("CLOUDQ_LAMBDA_BATCH_SIZE", str(batch_size))
        if concurrency is not None:
            monkeypatch.setenv("CLOUDQ_LAMBDA_MAXIMUM_CONCURRENCY", str(concurrency))
        app = make_app(e2e_env["CLOUDQ_TEST_APP"])
        resources = with_visibility(app_resources(app, "tests.tasks:app"), visibility)
        stacks.append(resources.stack_name)
        provision(
            resources,
            endpoint_url=ministack_server.endpoint_url,
            function_endpoint_url=function_endpoint_url,
            artifact=lambda_zip,
        )
        return app

    yield deploy
    cloudformation = boto3.client("cloudformation")
    for name in stacks:
        delete_stack(cloudformation, name)


def with_visibility(resources: Resources, visibility: int | None) -> Resources:
    """``resources`` with the Lambda queues' visibility timeout set to ``visibility``."""
    if visibility is None or resources.function is None:
        return resources
    lambda_queues = resources.function.queues
    queues = [
        queue.model_copy(update={"visibility_timeout": visibility})
        if queue.logical_name in lambda_queues
        else queue
        for queue in resources.queues
    ]
    return resources.model_copy(update={"queues": queues})
