"""pytest fixtures for testing cloudq apps offline (installed with the emulator: cloudq-aws-emulator).

- ``ministack_server``: a ministack server on a free 127.0.0.1 port, for the whole session.
- ``cloudq_aws_env``: this test's environment points boto3 (and cloudq) at that server.
- ``moto_aws``: moto in-process for this test (no server at all).

Deploy your app (its rendered template, as a stack: queues, table, Lambda worker) with
``cloudq_emulator.provision.provision(cloudq.infra.app_resources(app, "module:app"),
endpoint_url=ministack_server.endpoint_url)``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cloudq_emulator.moto_engine import MotoEngine
from cloudq_emulator.server import MinistackServer


@pytest.fixture(scope="session")
def ministack_server() -> Iterator[MinistackServer]:
    with MinistackServer() as server:
        yield server


@pytest.fixture
def cloudq_aws_env(ministack_server: MinistackServer, monkeypatch: pytest.MonkeyPatch) -> MinistackServer:
    for key, value in ministack_server.environment().items():
        monkeypatch.setenv(key, value)
    return ministack_server


@pytest.fixture
def moto_aws() -> Iterator[MotoEngine]:
    with MotoEngine() as engine:
        yield engine
