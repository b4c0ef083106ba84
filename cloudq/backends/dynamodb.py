"""``dynamodb://table``: results in a DynamoDB table keyed by ``task_id``.

Values are stored as JSON text (``value_json``) so any JSON round-trips exactly. ``expires_at``
is the table's TTL attribute; DynamoDB deletes expired items lazily, so reads treat a passed
``expires_at`` as missing. The claim is one conditional ``UpdateItem``, the guarded store one
conditional ``PutItem``. Every botocore error is mapped to ``BackendError`` in ``_mapped``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from cloudq.backends import dynamodb_flow, dynamodb_schedules
from cloudq.backends.base import (
    Claim,
    ClaimStatus,
    Counted,
    Delivery,
    Progress,
    ResultRecord,
    State,
    claim_decision,
)
from cloudq.core import aws_errors
from cloudq.core.aws import aws_client
from cloudq.core.clock import SYSTEM_CLOCK, Clock
from cloudq.core.errors import BackendError, ResultTooLargeError
from cloudq.core.pointer import PayloadPointer

#: BatchGetItem takes at most 100 keys.
BATCH_GET = 100
CLAIM_ATTEMPTS = 3
#: DynamoDB stores items of at most 400 KB (attribute names and values, UTF-8).
MAX_ITEM_BYTES = 400 * 1024
STRING_FIELDS = (
    "task_name",
    "error_type",
    "error_message",
    "traceback",
    "lease_owner",
    "lease_message_id",
)
NUMBER_FIELDS = (
    "attempts",
    "date_started",
    "date_done",
    "expires_at",
    "lease_expires_at",
    "lease_receive_count",
)
INTEGER_FIELDS = ("attempts", "expires_at", "lease_receive_count")

# The rule of backends.base.claim_decision: no record, or an expired one, or neither SUCCESS
# nor REVOKED and no live lease of another owner, or a lease for a lower receive count of the
# same message.
CLAIM_CONDITION = (
    "attribute_not_exists(task_id)"
    " OR expires_at < :now"
    " OR (NOT #state IN (:success, :revoked) AND (attribute_not_exists(lease_owner)"
    " OR lease_expires_at < :now OR lease_owner = :owner"
    " OR (lease_message_id = :message AND lease_receive_count < :count)))"
)
# The rule of backends.base.superseded, negated: store unless a live record of a later
# attempt is there.
NOT_SUPERSEDED_CONDITION = (
    "attribute_not_exists(task_id) OR expires_at < :now"
    " OR attribute_not_exists(attempts) OR attempts <= :attempt"
)
CLAIM_SET = (
    "SET #state = :started, task_name = :name, lease_owner = :owner, lease_expires_at = :lease,"
    " date_started = :now, lease_message_id = :message, lease_receive_count = :count"
)
# The rule of ResultBackend.revoke: revoke unless a live record has finished.
REVOKE_CONDITION = (
    "attribute_not_exists(task_id) OR expires_at < :now OR NOT #state IN (:success, :failure, :revoked)"
)
# A chord's member set (ResultBackend.count_once): added once, counted with it.
COUNT_ONCE_CONDITION = "attribute_not_exists(members) OR NOT contains(members, :member)"
CLAIM_REMOVE = (
    " ADD attempts :one"
    " REMOVE value_json, value_pointer_json, error_type, error_message, traceback, date_done"
)


def default_client(
    endpoint_url: str | None = None, region_name: str | None = None, http: str = "boto3"
) -> Any:
    return aws_client("dynamodb", endpoint_url, region_name, read_timeout=10, http=http)


def to_item(record: ResultRecord) -> dict[str, Any]:
    item: dict[str, Any] = {
        "task_id": {"S": record.task_id},
        "state": {"S": record.state.value},
        "value_json": {"S": json.dumps(record.value, ensure_ascii=False, separators=(",", ":"))},
    }
    for name in STRING_FIELDS:
        value = getattr(record, name)
        if value is not None:
            item[name] = {"S": value}
    for name in NUMBER_FIELDS:
        value = getattr(record, name)
        if value is not None:
            item[name] = {"N": repr(value)}
    if record.history:
        item["history_json"] = {"S": json.dumps(record.history, ensure_ascii=False)}
    if record.progress is not None:
        item["progress_json"] = {"S": record.progress.model_dump_json()}
    if record.value_pointer is not None:
        item["value_pointer_json"] = {"S": record.value_pointer.model_dump_json()}
    return item


def item_size(item: dict[str, Any]) -> int:
    """The size DynamoDB counts against its item limit, for the attribute types ``to_item``
    writes: names and strings in UTF-8 bytes; a number at most 21 bytes."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        if "S" in value:
            size += len(value["S"].encode())
        else:
            size += min(21, len(value["N"]))
    return size


def from_item(item: dict[str, Any]) -> ResultRecord:
    fields: dict[str, Any] = {"task_id": item["task_id"]["S"], "state": State(item["state"]["S"])}
    if "value_json" in item:
        fields["value"] = json.loads(item["value_json"]["S"])
    for name in STRING_FIELDS:
        if name in item:
            fields[name] = item[name]["S"]
    for name in NUMBER_FIELDS:
        if name in item:
            number = float(item[name]["N"])
            fields[name] = int(number) if name in INTEGER_FIELDS else number
    if "history_json" in item:
        fields["history"] = json.loads(item["history_json"]["S"])
    if "progress_json" in item:
        fields["progress"] = Progress.model_validate_json(item["progress_json"]["S"])
    if "value_pointer_json" in item:
        fields["value_pointer"] = PayloadPointer.model_validate_json(item["value_pointer_json"]["S"])
    return ResultRecord(**fields)


class DynamoDBBackend:
    """Result records in one DynamoDB table (partition key ``task_id``, TTL ``expires_at``)."""

    def __init__(
        self,
        table: str,
        *,
        client: Any = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
        aws_http: str = "boto3",
    ) -> None:
        self.table = table
        #: The time expiry and leases are compared with (DynamoDB's own TTL sweep uses AWS's).
        self.clock = clock
        self.client = client or default_client(endpoint_url, region_name, aws_http)

    @contextmanager
    def mapped(self) -> Iterator[None]:
        """The one boundary where botocore errors become ``BackendError``."""
        try:
            yield
        except aws_errors.ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "")
            if code == "ValidationException" and "item size" in error.get("Message", "").lower():
                raise ResultTooLargeError(f"DynamoDB refused the item: {error.get('Message')}") from exc
            if code == "ResourceNotFoundException":
                raise BackendError(
                    f"result table {self.table!r} does not exist; create it with 'cloudq emulator up "
                    "--app MODULE:APP' locally, or in your AWS account (key task_id, a string)"
                ) from exc
            raise BackendError(f"DynamoDB {code} on table {self.table!r}: {exc}") from exc
        except aws_errors.BotoCoreError as exc:
            raise BackendError(f"DynamoDB unreachable for table {self.table!r}: {exc}") from exc

    @staticmethod
    def _live(record: ResultRecord, now: float) -> ResultRecord | None:
        expired = record.expires_at is not None and record.expires_at < now
        return None if expired else record

    def get(self, task_id: str) -> ResultRecord | None:
        with self.mapped():
            item = self.client.get_item(
                TableName=self.table, Key={"task_id": {"S": task_id}}, ConsistentRead=True
            ).get("Item")
        return None if item is None else self._live(from_item(item), self.clock.time())

    def get_many(self, task_ids: Sequence[str]) -> dict[str, ResultRecord]:
        found: dict[str, ResultRecord] = {}
        unique = list(dict.fromkeys(task_ids))
        for start in range(0, len(unique), BATCH_GET):
            keys: list[dict[str, Any]] = [{"task_id": {"S": i}} for i in unique[start : start + BATCH_GET]]
            while keys:
                request = {self.table: {"Keys": keys, "ConsistentRead": True}}
                with self.mapped():
                    response = self.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table, []):
                    record = self._live(from_item(item), self.clock.time())
                    if record is not None:
                        found[record.task_id] = record
                keys = response.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", [])
        return found

    def put(self, record: ResultRecord) -> None:
        item = _checked_item(record)
        with self.mapped():
            self.client.put_item(TableName=self.table, Item=item)

    def put_unless_superseded(self, record: ResultRecord, attempt: int) -> ResultRecord | None:
        item = _checked_item(record)
        now = self.clock.time()
        try:
            with self.mapped():
                self.client.put_item(
                    TableName=self.table,
                    Item=item,
                    ConditionExpression=NOT_SUPERSEDED_CONDITION,
                    ExpressionAttributeValues={":now": {"N": repr(now)}, ":attempt": {"N": str(attempt)}},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
        except BackendError as exc:
            if not dynamodb_flow.condition_failed(exc):
                raise
            return self._superseding(exc, record.task_id)
        return None

    def _superseding(self, refusal: BackendError, task_id: str) -> ResultRecord:
        """The record that refused a guarded store: returned with the refusal
        (``ReturnValuesOnConditionCheckFailure``), or read when an engine does not."""
        cause = refusal.__cause__
        item = cause.response.get("Item") if isinstance(cause, aws_errors.ClientError) else None
        found = from_item(item) if item else self.get(task_id)
        if found is None:
            raise BackendError(
                f"DynamoDB refused the result of task {task_id} on table {self.table!r} as stale, "
                "but the record that refused it is gone"
            ) from refusal
        return found

    def claim(
        self,
        task_id: str,
        task_name: str,
        owner: str,
        lease_seconds: float,
        now: float,
        expires_at: int | None = None,
        delivery: Delivery | None = None,
    ) -> Claim:
        values = {
            ":message": {"S": delivery.message_id if delivery else ""},
            ":count": {"N": str(delivery.receive_count if delivery else 0)},
            ":now": {"N": repr(now)},
            ":success": {"S": State.SUCCESS.value},
            ":revoked": {"S": State.REVOKED.value},
            ":started": {"S": State.STARTED.value},
            ":owner": {"S": owner},
            ":name": {"S": task_name},
            ":lease": {"N": repr(now + lease_seconds)},
            ":one": {"N": "1"},
        }
        if expires_at is None:
            update = CLAIM_SET + CLAIM_REMOVE + ", expires_at"
        else:
            update = CLAIM_SET + ", expires_at = :expires" + CLAIM_REMOVE
            values[":expires"] = {"N": str(expires_at)}
        for _ in range(CLAIM_ATTEMPTS):
            try:
                with self.mapped():
                    response = self.client.update_item(
                        TableName=self.table,
                        Key={"task_id": {"S": task_id}},
                        UpdateExpression=update,
                        ConditionExpression=CLAIM_CONDITION,
                        ExpressionAttributeNames={"#state": "state"},
                        ExpressionAttributeValues=values,
                        ReturnValues="ALL_NEW",
                    )
                return Claim(status=ClaimStatus.CLAIMED, record=from_item(response["Attributes"]))
            except BackendError as exc:
                if not dynamodb_flow.condition_failed(exc):
                    raise
            refused = claim_decision(self.get(task_id), owner, now, delivery)
            if refused is not None:
                return refused
            # The blocking lease ended between the write and the read: try again.
        return Claim(status=ClaimStatus.LEASED, lease_remaining=1.0)

    def increment(self, key: str, amount: int = 1) -> int:
        with self.mapped():
            response = self.client.update_item(
                TableName=self.table,
                Key={"task_id": {"S": f"counter#{key}"}},
                UpdateExpression="ADD #counter :amount",
                ExpressionAttributeNames={"#counter": "counter"},
                ExpressionAttributeValues={":amount": {"N": str(amount)}},
                ReturnValues="UPDATED_NEW",
            )
        return int(response["Attributes"]["counter"]["N"])

    def count_once(self, key: str, member: str, expires_at: int | None = None) -> Counted:
        # The set and its size live in one item: ADD to both under one condition. DynamoDB
        # returns the whole set with the count, so a chord is limited by the item size
        # (400 KB: some 8,000 members of 40-character ids).
        values: dict[str, Any] = {":add": {"SS": [member]}, ":member": {"S": member}, ":one": {"N": "1"}}
        update = "ADD members :add, member_count :one"
        if expires_at is not None:
            update += " SET expires_at = :expires"
            values[":expires"] = {"N": str(expires_at)}
        key_item = {"task_id": {"S": f"set#{key}"}}
        try:
            with self.mapped():
                response = self.client.update_item(
                    TableName=self.table,
                    Key=key_item,
                    UpdateExpression=update,
                    ConditionExpression=COUNT_ONCE_CONDITION,
                    ExpressionAttributeValues=values,
                    ReturnValues="UPDATED_NEW",
                )
        except BackendError as exc:
            if not dynamodb_flow.condition_failed(exc):
                raise
            with self.mapped():
                item = self.client.get_item(TableName=self.table, Key=key_item, ConsistentRead=True)["Item"]
            return Counted(False, int(item["member_count"]["N"]))
        return Counted(True, int(response["Attributes"]["member_count"]["N"]))

    def revoke(self, task_id: str, now: float, expires_at: int | None = None) -> ResultRecord | None:
        values: dict[str, Any] = {
            ":now": {"N": repr(now)},
            ":revoked": {"S": State.REVOKED.value},
            ":success": {"S": State.SUCCESS.value},
            ":failure": {"S": State.FAILURE.value},
        }
        update = "SET #state = :revoked, date_done = :now"
        if expires_at is not None:
            update += ", expires_at = :expires"
            values[":expires"] = {"N": str(expires_at)}
        try:
            with self.mapped():
                self.client.update_item(
                    TableName=self.table,
                    Key={"task_id": {"S": task_id}},
                    UpdateExpression=update + " REMOVE lease_owner, lease_expires_at",
                    ConditionExpression=REVOKE_CONDITION,
                    ExpressionAttributeNames={"#state": "state"},
                    ExpressionAttributeValues=values,
                )
        except BackendError as exc:
            if not dynamodb_flow.condition_failed(exc):
                raise
            return self._superseding(exc, task_id)
        return None

    # The flow-control primitives: cloudq/backends/dynamodb_flow.py.

    def reserve_rate(self, key: str, interval: float, burst: int, now: float) -> float:
        return dynamodb_flow.reserve_rate(self, key, interval, burst, now)

    def acquire_lease(self, key: str, holder: str, limit: int, lease_seconds: float, now: float) -> float:
        return dynamodb_flow.acquire_lease(self, key, holder, limit, lease_seconds, now)

    def release_lease(self, key: str, holder: str) -> None:
        dynamodb_flow.release_lease(self, key, holder)

    def put_progress(self, task_id: str, owner: str, progress: Progress, now: float) -> bool:
        return dynamodb_flow.put_progress(self, task_id, owner, progress, now)

    # Run-time schedules: cloudq/backends/dynamodb_schedules.py.

    def put_schedule(self, key: str, name: str, definition: str) -> bool:
        return dynamodb_schedules.put_schedule(self, key, name, definition)

    def delete_schedule(self, key: str, name: str, expected: str | None = None) -> bool:
        return dynamodb_schedules.delete_schedule(self, key, name, expected)

    def schedules(self, key: str) -> dict[str, str]:
        return dynamodb_schedules.schedules(self, key)

    def running_progress(self, now: float, limit: int) -> list[ResultRecord] | None:
        """``None``: the table is keyed by task id only, and an index of running tasks would
        cost a write on every state change; finding them would be a scan."""
        return None

    def close(self) -> None:
        self.client.close()


def _checked_item(record: ResultRecord) -> dict[str, Any]:
    """``record`` as an item, refused with ``ResultTooLargeError`` when over DynamoDB's limit."""
    item = to_item(record)
    size = item_size(item)
    if size > MAX_ITEM_BYTES:
        raise ResultTooLargeError(
            f"the result of task {record.task_id} is {size} bytes as a DynamoDB item, over "
            f"DynamoDB's {MAX_ITEM_BYTES // 1024} KB limit; return an id instead and keep large "
            "data in S3 or your database"
        )
    return item
