"""AWS engines map vendor errors to cloudq errors at one boundary: a botocore exception never
reaches the caller, and each message says what to do."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config

from cloudq.backends.base import ResultRecord, State
from cloudq.backends.dynamodb import DynamoDBBackend
from cloudq.core.errors import (
    BackendError,
    CredentialsError,
    QueueNotFoundError,
    ResultTooLargeError,
    TransportError,
)
from cloudq.transports.base import OutgoingMessage
from cloudq.transports.sqs import SQSTransport
from cloudq_emulator.server import MinistackServer, free_port

NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=1, read_timeout=2)


def _client(service: str, endpoint_url: str, **extra: str) -> object:
    credentials = {"aws_access_key_id": "test", "aws_secret_access_key": "test", **extra}
    return boto3.client(
        service, endpoint_url=endpoint_url, region_name="us-east-1", config=NO_RETRIES, **credentials
    )


def test_a_missing_queue_names_the_physical_queue_and_the_fix(ministack_server: MinistackServer) -> None:
    transport = SQSTransport("nope-", client=_client("sqs", ministack_server.endpoint_url))
    with pytest.raises(QueueNotFoundError, match="queue 'nope-emails' does not exist.*cloudq emulator up"):
        transport.check_queues(["emails"])
    with pytest.raises(QueueNotFoundError):
        transport.send("emails", [OutgoingMessage("x")])


def test_a_missing_table_names_it_and_the_fix(ministack_server: MinistackServer) -> None:
    backend = DynamoDBBackend("no-such-results", client=_client("dynamodb", ministack_server.endpoint_url))
    with pytest.raises(BackendError, match="result table 'no-such-results' does not exist"):
        backend.get("x")


def test_a_result_over_dynamodbs_item_limit_is_refused_before_the_call(
    ministack_server: MinistackServer,
) -> None:
    # The table does not exist: had the item been sent, the error would be a missing table.
    backend = DynamoDBBackend("no-such-results", client=_client("dynamodb", ministack_server.endpoint_url))
    big = ResultRecord(task_id="big", state=State.SUCCESS, value="x" * 410_000)
    with pytest.raises(ResultTooLargeError, match=r"is 410\d{3} bytes as a DynamoDB item, over .* 400 KB"):
        backend.put(big)


def test_an_unreachable_endpoint_is_a_transport_error() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TransportError, match="unreachable") as raised:
        SQSTransport("x-", client=_client("sqs", closed)).check_queues(["q"])
    assert not isinstance(raised.value, QueueNotFoundError)
    with pytest.raises(BackendError, match="unreachable"):
        DynamoDBBackend("t", client=_client("dynamodb", closed)).get("x")


def test_missing_credentials_are_a_credentials_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    client = boto3.session.Session().client(
        "sqs", endpoint_url=f"http://127.0.0.1:{free_port()}", region_name="us-east-1", config=NO_RETRIES
    )
    with pytest.raises(CredentialsError, match="no AWS credentials"):
        SQSTransport("x-", client=client).check_queues(["q"])


def test_a_queue_looked_up_in_the_wrong_region_names_the_region_and_endpoint(
    ministack_server: MinistackServer,
) -> None:
    # Given a queue that exists in us-east-1
    sqs = _client("sqs", ministack_server.endpoint_url)
    sqs.create_queue(QueueName="regional-emails")
    # When it is looked up through a client of another region
    elsewhere = boto3.client(
        "sqs",
        endpoint_url=ministack_server.endpoint_url,
        region_name="eu-west-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=NO_RETRIES,
    )
    transport = SQSTransport("regional-", client=elsewhere)
    # Then the error says where it looked
    with pytest.raises(QueueNotFoundError) as caught:
        transport.check_queues(["emails"])
    assert "region eu-west-1" in str(caught.value)
    assert ministack_server.endpoint_url in str(caught.value)
    assert transport.describe() == f"SQS in region eu-west-1 at {ministack_server.endpoint_url}"


def test_a_region_aws_does_not_have_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    from cloudq.core.aws import aws_client

    with caplog.at_level("WARNING", logger="cloudq.core.aws"):
        aws_client("sqs", "http://127.0.0.1:9", "us-east1", read_timeout=1)
        aws_client("sqs", "http://127.0.0.1:9", "eu-west-1", read_timeout=1)
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1 and "region 'us-east1' is not an AWS region" in warnings[0]
