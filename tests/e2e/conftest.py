"""End-to-end fixtures: the ministack server (from the emulator's pytest plugin), a freshly
deployed app per test (its rendered template, as a stack), and real ``cloudq worker``
processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

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
    concurrency=None)``: the test tasks deployed with the app's Lambda worker (the rendered
    template, as a stack), whose trigger then runs them. ``visibility`` overrides the Lambda
    queues' visibility timeout in the model before rendering. The stacks are deleted at the
    end, so nothing keeps invoking after the test."""
    import boto3

    stacks: list[str] = []

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
        resources = with_visibility(app_resources(app, "tests.tasks:app"), visibility)
        stacks.append(resources.stack_name)
        provision(resources, endpoint_url=ministack_server.endpoint_url, artifact=lambda_zip)
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
