"""Payload stores (the claim check) behind the ``PayloadStore`` protocol. Engines are
imported only when used."""

from __future__ import annotations

from cloudq.core.urls import parse_url
from cloudq.payloads.base import PayloadPointer, PayloadStore, digest

__all__ = ["PayloadPointer", "PayloadStore", "digest", "payload_store_from_url"]

#: Objects in a Redis store live as long as the S3 lifecycle rule keeps them (days).
REDIS_TTL_SECONDS = 15 * 86_400


def payload_store_from_url(url: str, app_name: str) -> PayloadStore:
    """Build the store a ``payload_store`` URL names: ``s3://bucket/prefix``, ``redis://…``
    or ``memory://``."""
    parsed = parse_url(url, ("s3", "redis", "memory"), "payload store")
    if parsed.scheme == "memory":
        from cloudq.payloads.memory import MemoryPayloadStore

        return MemoryPayloadStore(prefix=parsed.location and parsed.location + "/")
    if parsed.scheme == "s3":
        from cloudq.payloads.s3 import S3PayloadStore

        bucket, _, prefix = parsed.location.partition("/")
        if not bucket:
            from cloudq.core.errors import ConfigurationError

            raise ConfigurationError(f"payload store URL {url!r} names no bucket: use s3://bucket/prefix")
        return S3PayloadStore(
            bucket,
            prefix + "/" if prefix else "",
            endpoint_url=parsed.options.get("endpoint_url"),
            region_name=parsed.options.get("region"),
        )
    from cloudq.payloads.redis import RedisPayloadStore

    return RedisPayloadStore.from_url(url, prefix=f"{app_name}-", ttl_seconds=REDIS_TTL_SECONDS)
