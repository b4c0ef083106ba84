"""Create an app's resources (``cloudq.infra.Resources``) through boto3, on any engine.

Queues get their dead-letter queue and a redrive policy; the result table is on-demand, with
TTL on ``expires_at`` set through the DynamoDB API (ministack does not apply TTL given in
CloudFormation). Idempotent: running it twice changes nothing.
"""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
from botocore.exceptions import ClientError

from cloudq.infra import QueueResource, Resources, TableResource


def provision(
    resources: Resources,
    *,
    endpoint_url: str | None = None,
    region_name: str = "us-east-1",
    sqs_client: Any = None,
    dynamodb_client: Any = None,
) -> None:
    sqs = sqs_client or boto3.client("sqs", endpoint_url=endpoint_url, region_name=region_name)
    for queue in resources.queues:
        _queue(sqs, queue)
    if resources.table is not None:
        dynamodb = dynamodb_client or boto3.client(
            "dynamodb", endpoint_url=endpoint_url, region_name=region_name
        )
        _table(dynamodb, resources.table)


def _fifo(queue: QueueResource) -> dict[str, str]:
    return {"FifoQueue": "true", "ContentBasedDeduplication": "false"} if queue.fifo else {}


def _create(sqs: Any, name: str, attributes: dict[str, str]) -> str:
    try:
        return str(sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])
    except ClientError as exc:
        if "QueueAlreadyExists" not in str(exc) and "QueueNameExists" not in str(exc):
            raise
        url = str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
        sqs.set_queue_attributes(
            QueueUrl=url, Attributes={k: v for k, v in attributes.items() if k != "FifoQueue"}
        )
        return url


def _queue(sqs: Any, queue: QueueResource) -> None:
    dlq_url = _create(
        sqs,
        queue.dead_letter_name,
        {**_fifo(queue), "MessageRetentionPeriod": str(queue.message_retention_seconds)},
    )
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(queue.max_receive_count)}
    _create(
        sqs,
        queue.name,
        {
            **_fifo(queue),
            "VisibilityTimeout": str(queue.visibility_timeout),
            "MessageRetentionPeriod": str(queue.message_retention_seconds),
            "RedrivePolicy": json.dumps(redrive),
        },
    )


def _table(dynamodb: Any, table: TableResource) -> None:
    try:
        dynamodb.create_table(
            TableName=table.name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": table.key, "AttributeType": "S"}],
            KeySchema=[{"AttributeName": table.key, "KeyType": "HASH"}],
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
    for _ in range(100):
        status = dynamodb.describe_table(TableName=table.name)["Table"]["TableStatus"]
        if status == "ACTIVE":
            break
        time.sleep(0.1)
    try:
        dynamodb.update_time_to_live(
            TableName=table.name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
        )
    except ClientError as exc:
        # Already enabled on the same attribute: nothing to do.
        if "already enabled" not in str(exc).lower():
            raise
