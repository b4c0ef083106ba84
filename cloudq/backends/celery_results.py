"""Celery's result backends, written as Celery writes them, so that Celery's
``AsyncResult.get()`` reads what a cloudq worker ran (docs/guides/celery.md).

Not a ``ResultBackend``: nothing is claimed or read here, one meta is put per run's end. The
meta itself (Celery's JSON) is built by ``cloudq.core.celery_protocol.result_meta``; the
result writer (``cloudq.runtime.results``) decides when. Two engines:

- ``redis://host:port/db``: ``celery-task-meta-<id>`` and a PUBLISH on that channel
  (``redis_celery_put.lua``);
- ``dynamodb://<table>`` (Celery's default table is ``celery``): Celery's layout, item
  ``{id: S "b'celery-task-meta-<id>'", result: B meta, timestamp: N, ttl: N}`` (the id is
  ``str()`` of Celery's bytes key, quotes and all: what Celery 5 writes and reads).
"""

from __future__ import annotations

from typing import Any, Protocol

from cloudq.core.celery_protocol import result_key
from cloudq.core.errors import BackendError
from cloudq.core.urls import parse_url


class CeleryResults(Protocol):
    """Puts a task's meta where Celery's backend keeps it."""

    def put(self, task_id: str, meta: str, now: float, keep_seconds: int | None) -> None:
        """Store ``meta`` (Celery's JSON) for ``task_id``, kept ``keep_seconds`` (``None``: for
        ever). Raises ``BackendError`` when the store fails."""
        ...


class RedisCeleryResults:
    """Celery's Redis result backend: the key, and the PUBLISH its waiting clients read."""

    def __init__(self, client: Any) -> None:
        from cloudq.core.redis_scripts import load_scripts

        self.client = client
        self._put = load_scripts(client, "cloudq.backends", ("celery_put",), "redis_")["celery_put"]

    @classmethod
    def from_url(cls, url: str) -> RedisCeleryResults:
        from cloudq.backends.redis import RedisBackend

        return cls(RedisBackend.from_url(url).client)

    def put(self, task_id: str, meta: str, now: float, keep_seconds: int | None) -> None:
        from cloudq.backends.redis import mapped

        with mapped("Celery result"):
            self._put(keys=[result_key(task_id)], args=[meta, keep_seconds or 0])


class DynamoDBCeleryResults:
    """Celery's DynamoDB result backend's table layout (``celery.backends.dynamodb``)."""

    def __init__(self, table: str, client: Any) -> None:
        self.table = table
        self.client = client

    @classmethod
    def from_location(
        cls, table: str, endpoint_url: str | None, region_name: str | None
    ) -> DynamoDBCeleryResults:
        from cloudq.core.aws import aws_client

        return cls(table, aws_client("dynamodb", endpoint_url, region_name, read_timeout=10))

    def put(self, task_id: str, meta: str, now: float, keep_seconds: int | None) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        item: dict[str, Any] = {
            "id": {"S": repr(result_key(task_id).encode())},  # Celery's str(b"…") key
            "result": {"B": meta.encode()},
            "timestamp": {"N": str(now)},
        }
        if keep_seconds:
            item["ttl"] = {"N": str(int(now + keep_seconds))}
        try:
            self.client.put_item(TableName=self.table, Item=item)
        except (BotoCoreError, ClientError) as exc:
            raise BackendError(f"Celery result table {self.table!r} not written: {exc}") from exc


def celery_results_from_url(url: str) -> CeleryResults:
    """The engine a ``celery_result_backend`` URL names."""
    parsed = parse_url(url, ("redis", "rediss", "dynamodb"), "Celery result backend")
    if parsed.scheme in ("redis", "rediss"):
        return RedisCeleryResults.from_url(url)
    return DynamoDBCeleryResults.from_location(
        parsed.location or "celery", parsed.options.get("endpoint_url"), parsed.options.get("region")
    )
