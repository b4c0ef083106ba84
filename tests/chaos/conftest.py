"""Chaos fixtures: the ministack server, a fault proxy in front of it for worker processes,
a freshly provisioned app per test, and real ``cloudq worker`` processes.

Worker processes reach the emulator only through the proxy (``AWS_ENDPOINT_URL`` is the
proxy), so a test can cut their network; the test process talks to the emulator directly, so
it can enqueue and check while the network is cut.

``CLOUDQ_CHAOS=full`` runs the issue's numbers (``make chaos``); anything else runs the short
version that ``make test`` (and so CI) runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from cloudq import CloudQ, State
from cloudq.core.message import Message
from cloudq.infra import app_resources
from cloudq.transports.base import OutgoingMessage
from cloudq_emulator.provision import provision
from cloudq_emulator.server import MinistackServer
from tests.chaos.fault_proxy import FaultProxy
from tests.processes import (  # noqa: F401 - re-exported for the chaos tests
    WorkerFactory,
    process_env,
    side_effects,
    wait_until,
    worker_log,
    worker_processes,
)
from tests.tasks import make_app

FULL = os.environ.get("CLOUDQ_CHAOS", "").lower() == "full"
SQS_MAX_MESSAGE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Scale:
    """The numbers of one run of the suite."""

    kill_tasks: int
    #: Seconds between a worker's start and its SIGKILL (uniform in this range).
    kill_every: tuple[float, float]
    outage_tasks: int
    outage_seconds: float
    hostile: int
    huge: int
    #: Valid tasks sent among the hostile ones (one after every ``valid_every`` hostile).
    valid_every: int
    #: Celery-shaped garbage on a Celery queue (issue 25).
    celery_garbage: int


SCALE = (
    Scale(
        kill_tasks=2000,
        kill_every=(1.5, 3.0),
        outage_tasks=600,
        outage_seconds=20,
        hostile=10_000,
        huge=6,
        valid_every=20,
        celery_garbage=2000,
    )
    if FULL
    else Scale(
        kill_tasks=300,
        kill_every=(1.0, 2.0),
        outage_tasks=150,
        outage_seconds=8,
        hostile=500,
        huge=3,
        valid_every=10,
        celery_garbage=100,
    )
)


@pytest.fixture
def scale() -> Scale:
    return SCALE


@pytest.fixture
def fault_proxy(ministack_server: MinistackServer) -> Iterator[FaultProxy]:
    with FaultProxy(ministack_server.port) as proxy:
        yield proxy


@pytest.fixture
def chaos_env(
    ministack_server: MinistackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """This test's environment (``tests.processes.process_env``): AWS pointed straight at the
    emulator."""
    return process_env(ministack_server, tmp_path, monkeypatch, "chaos")


@pytest.fixture
def chaos_app(chaos_env: dict[str, str], ministack_server: MinistackServer) -> CloudQ:
    """The test tasks on SQS + DynamoDB in the emulator, provisioned; reached directly."""
    app = make_app(chaos_env["CLOUDQ_TEST_APP"])
    provision(app_resources(app), endpoint_url=ministack_server.endpoint_url)
    return app


@pytest.fixture
def start_worker(
    chaos_env: dict[str, str], fault_proxy: FaultProxy, tmp_path: Path
) -> Iterator[WorkerFactory]:
    """Start ``cloudq worker tests.tasks:app`` processes that reach AWS through the proxy;
    ``start_worker(*args, env={...})`` adds variables. All are stopped at the end."""
    proxied = {**chaos_env, "AWS_ENDPOINT_URL": fault_proxy.endpoint_url}
    with worker_processes(proxied, tmp_path, stop_timeout=30) as start:
        try:
            yield start
        finally:
            fault_proxy.restore()  # before the workers are stopped, so they can stop cleanly


def enqueue(app: CloudQ, task: str, calls: Sequence[tuple[list[Any], str]], key: str | None = None) -> None:
    """Send ``task(*args)`` with the given task ids, batched (10 per SendMessageBatch)."""
    bodies = []
    for args, task_id in calls:
        message = Message(id=task_id, task=task, args=args)
        if key is not None:
            message = message.signed(key)
        bodies.append(OutgoingMessage(message.encode(SQS_MAX_MESSAGE_BYTES)))
    app.transport.send(app.settings.default_queue, bodies)


def states(app: CloudQ, task_ids: Sequence[str]) -> dict[str, State]:
    """The state of each task id (PENDING when there is no record)."""
    assert app.backend is not None
    found = app.backend.get_many(task_ids)
    return {task_id: found[task_id].state if task_id in found else State.PENDING for task_id in task_ids}


def succeeded(app: CloudQ, task_ids: Sequence[str]) -> int:
    return sum(1 for state in states(app, task_ids).values() if state is State.SUCCESS)


def sqs_client() -> Any:
    """Plain boto3 SQS, straight at the emulator (the test's own view of the queues)."""
    return boto3.client("sqs")


def queue_url(app: CloudQ, logical: str) -> str:
    return str(sqs_client().get_queue_url(QueueName=app.physical_queue_name(logical))["QueueUrl"])
