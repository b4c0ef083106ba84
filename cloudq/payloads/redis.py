"""``redis://host:port/db``: objects as Redis strings, for Redis users. Each object expires
after ``ttl_seconds`` (Redis's counterpart of the S3 lifecycle rule)."""

from __future__ import annotations

from typing import Any

from cloudq.core.errors import MissingExtraError, PayloadMissingError, PayloadStoreError

try:
    import redis
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingExtraError("redis", "redis") from exc


class RedisPayloadStore:
    def __init__(self, client: Any, prefix: str = "", ttl_seconds: int | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_seconds = ttl_seconds
        self.location = f"redis key prefix {prefix!r}"

    @classmethod
    def from_url(cls, url: str, prefix: str = "", ttl_seconds: int | None = None) -> RedisPayloadStore:
        client = redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=5)
        return cls(client, prefix, ttl_seconds)

    def key_for(self, name: str) -> str:
        return f"{self.prefix}payload:{name}"

    def put(self, key: str, data: bytes) -> None:
        try:
            self.client.set(key, data, ex=self.ttl_seconds)
        except redis.RedisError as exc:
            raise PayloadStoreError(f"Redis payload store failed (put {key}): {exc}") from exc

    def get(self, key: str) -> bytes:
        try:
            found = self.client.get(key)
        except redis.RedisError as exc:
            raise PayloadStoreError(f"Redis payload store failed (get {key}): {exc}") from exc
        if found is None:
            raise PayloadMissingError(f"payload object {key!r} is missing from Redis (deleted or expired)")
        return bytes(found)

    def delete(self, key: str) -> None:
        try:
            self.client.delete(key)
        except redis.RedisError as exc:
            raise PayloadStoreError(f"Redis payload store failed (delete {key}): {exc}") from exc
