"""boto3 clients for the AWS engines, configured in one place."""

from __future__ import annotations

import os
from typing import Any

import boto3
from botocore.config import Config

DEFAULT_REGION = "us-east-1"


def aws_client(
    service: str, endpoint_url: str | None = None, region_name: str | None = None, *, read_timeout: float
) -> Any:
    """A client with boto3's standard retry mode (backoff with jitter on throttling and
    transient errors), a short connect timeout so an outage is noticed quickly, and a pool
    large enough for a worker's threads. ``AWS_ENDPOINT_URL`` (the emulator) is honoured by
    boto3 itself when ``endpoint_url`` is not given."""
    region = (
        region_name or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    )
    config = Config(
        retries={"mode": "standard", "max_attempts": 5},
        max_pool_connections=64,
        connect_timeout=5,
        read_timeout=read_timeout,
    )
    return boto3.session.Session().client(
        service, endpoint_url=endpoint_url, region_name=region, config=config
    )
