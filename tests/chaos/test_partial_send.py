"""A send whose later request fails: the messages sent are reported sent, the rest refused
with the reason, none silently dropped (the Transport.send contract, on SQS through the
fault proxy)."""

from __future__ import annotations

import boto3
import pytest

from cloudq import CloudQ, PartialSendError
from cloudq.transports.base import OutgoingMessage
from cloudq.transports.sqs import SQSTransport
from tests.chaos.fault_proxy import FaultProxy
from tests.tasks import make_app


def test_a_request_failing_midway_reports_every_message_not_sent(
    chaos_app: CloudQ, fault_proxy: FaultProxy
) -> None:
    # Given a transport that reaches SQS through the proxy, and a proxy that fails every
    # request carrying the second batch's marker (retries included)
    client = boto3.client("sqs", endpoint_url=fault_proxy.endpoint_url)
    transport = SQSTransport(chaos_app.physical_queue_name(""), client=client)
    bodies = [f"m{i}" for i in range(10)] + ["second-batch-marker"] + [f"m{i}" for i in range(11, 60)]
    fault_proxy.fail_requests(b"second-batch-marker")
    # When 60 messages (six batches, sent in parallel) are sent
    results = transport.send("default", [OutgoingMessage(body) for body in bodies])
    # Then the second batch is refused with the reason; each other batch was sent, or refused
    # as not sent after the failure: every message is accounted for, none dropped silently
    assert [result.sent for result in results[10:20]] == [False] * 10
    assert all("not sent" in (result.error or "") for result in results if not result.sent)
    sent = [result.message_id for result in results if result.sent]
    got = {m.message_id for m in chaos_app.transport.receive("default", 10, wait_seconds=1)}
    while len(got) < len(sent):
        received = chaos_app.transport.receive("default", 10, wait_seconds=1)
        if not received:
            break
        got |= {m.message_id for m in received}
    assert got == set(sent)


def test_map_through_a_failing_request_raises_partial_send_error_naming_each_task(
    chaos_app: CloudQ, fault_proxy: FaultProxy
) -> None:
    # Given the app reaching SQS through the proxy, which fails the second batch's request
    client = boto3.client("sqs", endpoint_url=fault_proxy.endpoint_url)
    transport = SQSTransport(chaos_app.physical_queue_name(""), client=client)
    app = make_app(chaos_app.name, transport=transport, backend=None)
    fault_proxy.fail_requests(b"poison-tag")
    # When 15 calls are mapped (two batches, one after the other)
    with pytest.raises(PartialSendError) as caught:
        app.tasks["record"].map(["ok"] * 10 + ["poison-tag"] + ["ok"] * 4)
    # Then the error names each call not sent, and holds the handles of the ten sent
    assert [index for index, _ in caught.value.failed] == list(range(10, 15))
    assert len(caught.value.sent) == 10
    assert chaos_app.transport.stats("default").visible == 10
