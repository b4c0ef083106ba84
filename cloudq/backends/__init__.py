"""Result engines behind the ``ResultBackend`` protocol. Engines are imported only when used."""

from __future__ import annotations

from cloudq.backends.base import Claim, ClaimStatus, ResultBackend, ResultRecord, State
from cloudq.core.clock import SYSTEM_CLOCK, Clock
from cloudq.core.naming import queue_prefix, results_table_name
from cloudq.core.urls import parse_url

__all__ = [
    "Claim",
    "ClaimStatus",
    "ResultBackend",
    "ResultRecord",
    "State",
    "backend_from_url",
]


def backend_from_url(
    url: str, app_name: str, *, clock: Clock = SYSTEM_CLOCK, aws_http: str = "boto3"
) -> ResultBackend:
    """Build the engine a backend URL names; ``clock`` is the time it compares expiry and
    leases with; ``aws_http`` is the ``aws_http`` setting."""
    parsed = parse_url(url, ("dynamodb", "memory", "redis"), "result backend")
    if parsed.scheme == "memory":
        from cloudq.backends.memory import MemoryBackend

        return MemoryBackend(clock=clock)
    if parsed.scheme == "dynamodb":
        from cloudq.backends.dynamodb import DynamoDBBackend

        return DynamoDBBackend(
            table=parsed.location or results_table_name(app_name),
            endpoint_url=parsed.options.get("endpoint_url"),
            region_name=parsed.options.get("region"),
            clock=clock,
            aws_http=aws_http,
        )
    from cloudq.backends.redis import RedisBackend

    return RedisBackend.from_url(url, prefix=queue_prefix(app_name), clock=clock)
