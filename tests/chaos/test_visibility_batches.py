"""A heartbeat whose second visibility batch fails still extends the third (issue 11, item 8).

The worker extends its running tasks' messages in batches of 10. One failed batch must not
leave the later ones to reappear while their tasks still run (a duplicate run): every batch is
sent, then the failure is reported.
"""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest
from botocore.config import Config

from cloudq import CloudQ
from cloudq.core.errors import TransportError
from cloudq.transports.base import OutgoingMessage, ReceivedMessage, Transport
from cloudq.transports.sqs import SQSTransport
from tests.chaos.fault_proxy import FaultProxy

#: The messages' visibility as received, and what the heartbeat extends it to (seconds).
RECEIVED_VISIBILITY = 4
EXTENDED_VISIBILITY = 120
IN_FLIGHT = 25  # three ChangeMessageVisibilityBatch requests: 10, 10 and 5 messages


def _receive(
    transport: Transport, queue: str, expected: int, visibility: int, wait: float
) -> list[ReceivedMessage]:
    got: list[ReceivedMessage] = []
    deadline = time.monotonic() + wait
    while len(got) < expected and time.monotonic() < deadline:
        got += transport.receive(queue, 10, wait_seconds=1, visibility_timeout=visibility)
    return got


def _proxied_client(proxy: FaultProxy) -> Any:
    # One attempt: boto3 would retry the 500, and the proxy would fail the retries too (they
    # carry the same handles), only later.
    config = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=2, read_timeout=10)
    return boto3.client("sqs", endpoint_url=proxy.endpoint_url, config=config)


def test_a_failed_visibility_batch_does_not_skip_the_later_ones(
    chaos_app: CloudQ, fault_proxy: FaultProxy
) -> None:
    # Given 25 messages in flight, hidden for a few seconds
    queue = chaos_app.settings.default_queue
    chaos_app.transport.send(queue, [OutgoingMessage(f"m{i}") for i in range(IN_FLIGHT)])
    received = _receive(chaos_app.transport, queue, IN_FLIGHT, RECEIVED_VISIBILITY, wait=10)
    received_at = time.monotonic()
    assert len(received) == IN_FLIGHT
    handles = [message.receipt_handle for message in received]
    second_batch = {message.body for message in received[10:20]}
    # And a transport reaching SQS through the proxy, which fails the request of the second batch
    proxied = SQSTransport(f"{chaos_app.name}-", client=_proxied_client(fault_proxy))
    fault_proxy.fail_requests(handles[10].encode())

    # When the heartbeat extends all 25
    with pytest.raises(TransportError) as raised:
        proxied.extend_visibility(queue, handles, EXTENDED_VISIBILITY)
    fault_proxy.fail_requests(None)

    # Then past the original visibility only the second batch reappears: the first and the
    # third were extended
    assert fault_proxy.failed_requests == 1
    time.sleep(max(0.0, received_at + RECEIVED_VISIBILITY + 1 - time.monotonic()))
    back = _receive(chaos_app.transport, queue, IN_FLIGHT, EXTENDED_VISIBILITY, wait=4)
    assert sorted(message.body for message in back) == sorted(second_batch)
    # And the failure is reported, with how many messages were not extended
    assert "10 of 25" in str(raised.value), raised.value
