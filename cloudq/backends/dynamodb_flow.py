"""The flow-control primitives of ``DynamoDBBackend``, with the rules of ``backends.flow``.

Each lives in one item of the result table beside the records: a rate bucket is
``rate#<key>`` (its ``tat``), a concurrency cap ``lease#<key>`` (a map of holder → expiry and a
``version``). Both carry the table's TTL attribute, so an idle one disappears.

- A rate slot is one conditional ``UpdateItem``: the rule has two cases (a busy bucket moves
  its ``tat`` on, an idle one starts from now), each one condition; the busy case is tried
  first (a limited task under load), the idle one when it is refused.
- A lease is a consistent read, the rule, and a ``PutItem`` conditional on the ``version``
  read (optimistic: a writer that lost the race reads again). A release removes its holder
  and moves the version on, so a stale writer cannot bring it back.
- A progress write is one ``UpdateItem`` whose condition is ``progress_allowed``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from cloudq.backends.base import Progress, State
from cloudq.backends.flow import lease_decision, rate_decision
from cloudq.core.errors import BackendError

if TYPE_CHECKING:
    from cloudq.backends.dynamodb import DynamoDBBackend

#: How often a rate slot or a lease is tried again after losing a race (then: wait a second).
FLOW_ATTEMPTS = 8
#: A bucket or lease item outlives its last use by this much (seconds), then TTL drops it.
FLOW_ITEM_KEEP_SECONDS = 3600
#: The retry hint of a lease that lost every race: the contention ends within this.
CONTENDED_RETRY_SECONDS = 1.0

# The two cases of backends.flow.rate_decision: a busy bucket (tat not passed) reserves the
# slot at tat; an idle one (no tat, or passed) the slot at now.
RATE_BUSY_CONDITION = "tat >= :now"
RATE_BUSY_UPDATE = "SET tat = tat + :interval, expires_at = tat + :keep"
RATE_IDLE_CONDITION = "attribute_not_exists(tat) OR tat < :now"
RATE_IDLE_UPDATE = "SET tat = :next, expires_at = :expires"
# The rule of backends.flow.progress_allowed: a live record the owner holds a live claim on.
PROGRESS_CONDITION = (
    "#state IN (:started, :progress) AND lease_owner = :owner AND lease_expires_at > :now"
    " AND (attribute_not_exists(expires_at) OR expires_at >= :now)"
)
LEASE_VERSION_CONDITION = "attribute_not_exists(version) OR version = :version"


def reserve_rate(backend: DynamoDBBackend, key: str, interval: float, burst: int, now: float) -> float:
    item_key = {"task_id": {"S": f"rate#{key}"}}
    for _ in range(FLOW_ATTEMPTS):
        busy = {
            ":now": {"N": repr(now)},
            ":interval": {"N": repr(interval)},
            ":keep": {"N": str(math.ceil(interval) + FLOW_ITEM_KEEP_SECONDS)},
        }
        attributes = _conditional_update(backend, item_key, RATE_BUSY_UPDATE, RATE_BUSY_CONDITION, busy)
        if attributes is not None:
            tat = float(attributes["tat"]["N"]) - interval  # the state the update found
            return rate_decision(tat, now, interval, burst).wait
        decision = rate_decision(None, now, interval, burst)
        idle = {
            ":now": {"N": repr(now)},
            ":next": {"N": repr(decision.tat)},
            ":expires": {"N": str(math.ceil(decision.tat) + FLOW_ITEM_KEEP_SECONDS)},
        }
        if _conditional_update(backend, item_key, RATE_IDLE_UPDATE, RATE_IDLE_CONDITION, idle) is not None:
            return decision.wait
    raise BackendError(f"DynamoDB rate bucket {key!r}: no slot reserved after {FLOW_ATTEMPTS} races")


def acquire_lease(
    backend: DynamoDBBackend, key: str, holder: str, limit: int, lease_seconds: float, now: float
) -> float:
    item_key = {"task_id": {"S": f"lease#{key}"}}
    for _ in range(FLOW_ATTEMPTS):
        with backend.mapped():
            item = backend.client.get_item(TableName=backend.table, Key=item_key, ConsistentRead=True).get(
                "Item", {}
            )
        holders = {name: float(value["N"]) for name, value in item.get("holders", {}).get("M", {}).items()}
        version = int(item["version"]["N"]) if "version" in item else 0
        decision = lease_decision(holders, holder, limit, lease_seconds, now)
        if decision.holders is None:
            return decision.retry_after
        stored = {
            **item_key,
            "holders": {"M": {name: {"N": repr(expiry)} for name, expiry in decision.holders.items()}},
            "version": {"N": str(version + 1)},
            "expires_at": {"N": str(math.ceil(max(decision.holders.values())) + FLOW_ITEM_KEEP_SECONDS)},
        }
        try:
            with backend.mapped():
                backend.client.put_item(
                    TableName=backend.table,
                    Item=stored,
                    ConditionExpression=LEASE_VERSION_CONDITION,
                    ExpressionAttributeValues={":version": {"N": str(version)}},
                )
            return 0.0
        except BackendError as exc:
            if not condition_failed(exc):
                raise
    return CONTENDED_RETRY_SECONDS


def release_lease(backend: DynamoDBBackend, key: str, holder: str) -> None:
    try:
        with backend.mapped():
            backend.client.update_item(
                TableName=backend.table,
                Key={"task_id": {"S": f"lease#{key}"}},
                UpdateExpression="SET version = version + :one REMOVE holders.#holder",
                ConditionExpression="attribute_exists(holders.#holder)",
                ExpressionAttributeNames={"#holder": holder},
                ExpressionAttributeValues={":one": {"N": "1"}},
            )
    except BackendError as exc:
        if not condition_failed(exc):
            raise


def put_progress(backend: DynamoDBBackend, task_id: str, owner: str, progress: Progress, now: float) -> bool:
    values = {
        ":started": {"S": State.STARTED.value},
        ":progress": {"S": State.PROGRESS.value},
        ":owner": {"S": owner},
        ":now": {"N": repr(now)},
        ":report": {"S": progress.model_dump_json()},
    }
    try:
        with backend.mapped():
            backend.client.update_item(
                TableName=backend.table,
                Key={"task_id": {"S": task_id}},
                UpdateExpression="SET #state = :progress, progress_json = :report",
                ConditionExpression=PROGRESS_CONDITION,
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=values,
            )
    except BackendError as exc:
        if not condition_failed(exc):
            raise
        return False
    return True


def _conditional_update(
    backend: DynamoDBBackend, key: dict[str, Any], update: str, condition: str, values: dict[str, Any]
) -> dict[str, Any] | None:
    """The item after ``update``, or ``None`` when ``condition`` refused it."""
    try:
        with backend.mapped():
            response = backend.client.update_item(
                TableName=backend.table,
                Key=key,
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
    except BackendError as exc:
        if not condition_failed(exc):
            raise
        return None
    attributes: dict[str, Any] = response["Attributes"]
    return attributes


def condition_failed(exc: BackendError) -> bool:
    """Whether ``exc`` is a refused condition (the rule said no), not an outage."""
    from cloudq.core import aws_errors

    cause = exc.__cause__
    refused = "ConditionalCheckFailedException"
    return isinstance(cause, aws_errors.ClientError) and cause.response["Error"]["Code"] == refused
