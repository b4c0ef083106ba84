"""The fault proxy itself: the scenarios rely on a cut really cutting, and on restore."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

from cloudq_emulator.server import MinistackServer
from tests.chaos.fault_proxy import FaultProxy


def _client(endpoint_url: str, server: MinistackServer) -> Any:
    env = server.environment()
    config = Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=1)
    return boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    ).client("sqs", endpoint_url=endpoint_url, config=config)


def test_a_blackhole_cut_times_out_clients_and_restore_brings_them_back(
    ministack_server: MinistackServer, fault_proxy: FaultProxy
) -> None:
    # Given a client that reaches the emulator through the proxy, and one that does not
    through = _client(fault_proxy.endpoint_url, ministack_server)
    direct = _client(ministack_server.endpoint_url, ministack_server)
    through.list_queues()
    # When the proxy is cut
    fault_proxy.cut()
    # Then a request through it times out (no answer, no refusal), while the emulator is up
    started = time.monotonic()
    with pytest.raises(ReadTimeoutError):
        through.list_queues()
    assert time.monotonic() - started >= 0.9
    direct.list_queues()
    # And after restore, requests go through again
    fault_proxy.restore()
    through.list_queues()


def test_a_reset_cut_fails_clients_at_once(
    ministack_server: MinistackServer, fault_proxy: FaultProxy
) -> None:
    through = _client(fault_proxy.endpoint_url, ministack_server)
    through.list_queues()
    fault_proxy.cut(reset=True)
    started = time.monotonic()
    with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        through.list_queues()
    assert time.monotonic() - started < 0.9
    fault_proxy.restore()
    through.list_queues()
