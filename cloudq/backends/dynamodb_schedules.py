"""The run-time schedules of ``DynamoDBBackend``, with the rule of ``backends.base.schedule_change``.

A collection is one item of the result table beside the records, ``schedules#<key>``, whose
map ``schedules`` holds name → definition (so one item, at most DynamoDB's 400 KB, holds an
app's schedules: a few thousand). It has no TTL attribute: schedules stay until deleted.

- A create makes sure the map exists (an unconditional ``if_not_exists``), then sets its entry
  in one ``UpdateItem`` conditional on the entry's absence: the rule's create case.
- A delete is one ``UpdateItem`` removing the entry, conditional on its presence (and, when
  expected, on its definition): the rule's delete case.
- The listing is one consistent ``GetItem``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cloudq.backends.dynamodb_flow import condition_failed
from cloudq.core.errors import BackendError

if TYPE_CHECKING:
    from cloudq.backends.dynamodb import DynamoDBBackend

CREATE_CONDITION = "attribute_not_exists(schedules.#name)"
DELETE_CONDITION = "attribute_exists(schedules.#name)"
DELETE_EXPECTED_CONDITION = "schedules.#name = :expected"


def _item_key(key: str) -> dict[str, Any]:
    return {"task_id": {"S": f"schedules#{key}"}}


def put_schedule(backend: DynamoDBBackend, key: str, name: str, definition: str) -> bool:
    with backend.mapped():
        backend.client.update_item(
            TableName=backend.table,
            Key=_item_key(key),
            UpdateExpression="SET schedules = if_not_exists(schedules, :empty)",
            ExpressionAttributeValues={":empty": {"M": {}}},
        )
    return _conditional(
        backend,
        key,
        update="SET schedules.#name = :definition",
        condition=CREATE_CONDITION,
        names={"#name": name},
        values={":definition": {"S": definition}},
    )


def delete_schedule(backend: DynamoDBBackend, key: str, name: str, expected: str | None) -> bool:
    condition = DELETE_CONDITION
    values: dict[str, Any] = {}
    if expected is not None:
        condition = f"{DELETE_CONDITION} AND {DELETE_EXPECTED_CONDITION}"
        values[":expected"] = {"S": expected}
    return _conditional(
        backend,
        key,
        update="REMOVE schedules.#name",
        condition=condition,
        names={"#name": name},
        values=values,
    )


def schedules(backend: DynamoDBBackend, key: str) -> dict[str, str]:
    with backend.mapped():
        item = backend.client.get_item(TableName=backend.table, Key=_item_key(key), ConsistentRead=True)
    entries = item.get("Item", {}).get("schedules", {}).get("M", {})
    return {name: value["S"] for name, value in entries.items()}


def _conditional(
    backend: DynamoDBBackend,
    key: str,
    *,
    update: str,
    condition: str,
    names: dict[str, str],
    values: dict[str, Any],
) -> bool:
    """Whether the update landed (``False``: the condition, the rule, refused it)."""
    extra = {"ExpressionAttributeValues": values} if values else {}
    try:
        with backend.mapped():
            backend.client.update_item(
                TableName=backend.table,
                Key=_item_key(key),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                **extra,
            )
    except BackendError as exc:
        if not condition_failed(exc):
            raise
        return False
    return True
