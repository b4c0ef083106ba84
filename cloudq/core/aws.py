"""The AWS client factory: the engines' clients, configured in one place.

boto3 clients by default; with ``aws_http="lean"``, clients whose hot SQS and DynamoDB calls go
through ``cloudq.core.lean``. botocore is imported only when a boto3 client is made
(``cloudq.core.boto_sessions``): on Lambda the lean clients come from the environment alone,
and the handler's path imports neither boto3 nor botocore.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from typing import TYPE_CHECKING, Any

from cloudq.core.distribution import VERSION

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config

logger = logging.getLogger("cloudq.aws")  # its name before the move

DEFAULT_REGION = "us-east-1"
_checked_regions: set[str] = set()
#: The services cloudq makes clients for, and their names in botocore's endpoints.json.
ENDPOINT_PREFIXES = {
    "sqs": "sqs",
    "dynamodb": "dynamodb",
    "s3": "s3",
    "cloudwatch": "monitoring",
    "stepfunctions": "states",
    "scheduler": "scheduler",
}


@functools.cache
def _partitions() -> tuple[dict[str, Any], ...]:
    """The partitions of botocore's ``partitions.json`` (their regions, region pattern, DNS
    suffix and ARN name), read from botocore's data folder, found on ``sys.path`` as Python
    would find the package, without importing botocore."""
    import sys

    for folder in sys.path:
        path = os.path.join(folder or ".", "botocore", "data", "partitions.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as file:
                return tuple(json.load(file).get("partitions", ()))
    return ()


def _partition_of(region: str) -> dict[str, Any]:
    for found in _partitions():
        if region in found.get("regions", {}) or re.match(found.get("regionRegex", "^$"), region):
            return found
    return {}


def warn_unknown_region(service: str, region: str) -> None:
    """Warn (once per region) about a region AWS does not have, such as the typo ``us-east1``:
    every call would fail later as a missing queue or an unreachable endpoint. The regions
    come from botocore's ``partitions.json``, not from the much larger ``endpoints.json``."""
    if region in _checked_regions:
        return
    _checked_regions.add(region)
    known = {name for partition in _partitions() for name in partition.get("regions", {})}
    if known and region not in known:
        logger.warning(
            "region %r is not an AWS region for %s (e.g. us-east-1, eu-west-1); check AWS_REGION, "
            "AWS_DEFAULT_REGION or region_name",
            region,
            service,
        )


def partition(region: str) -> str:
    """The ARN partition of ``region`` (``aws``, ``aws-cn``, ``aws-us-gov``…), from botocore's
    ``partitions.json``; ``aws`` for a region it does not know."""
    found = _partition_of(region)
    return str(found.get("outputs", {}).get("name", found.get("id", "aws")))


def aws_client(
    service: str,
    endpoint_url: str | None = None,
    region_name: str | None = None,
    *,
    read_timeout: float,
    connect_timeout: float = 5,
    attempts: int = 6,
    http: str = "boto3",
) -> Any:
    """A client with boto3's standard retry mode (backoff with jitter on throttling and
    transient errors), a short connect timeout so an outage is noticed quickly, and a pool
    large enough for a worker's threads. ``AWS_ENDPOINT_URL`` (the emulator) is honoured by
    boto3 itself when ``endpoint_url`` is not given. ``http="lean"`` (the ``aws_http``
    setting): for SQS and DynamoDB, a client whose hot calls are signed and sent by
    ``cloudq.core.lean`` and whose other calls are this boto3 client's; where the environment
    alone decides credentials and endpoint (``environment_alone``: Lambda, containers given
    keys), that boto3 client is made only when another call needs it."""
    if service not in ENDPOINT_PREFIXES:  # a mistake in cloudq itself, not the user's
        raise ValueError(f"add {service!r} and its endpoints.json name to cloudq.core.aws.ENDPOINT_PREFIXES")
    region = (
        region_name or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    )
    warn_unknown_region(service, region)
    if http == "lean" and service in LEAN_SERVICES and environment_alone():
        timeouts = {"read_timeout": read_timeout, "connect_timeout": connect_timeout, "attempts": attempts}
        return _lean_from_environment(service, endpoint_url, region, timeouts, region_name)
    from botocore.config import Config

    from cloudq.core.boto_sessions import session as new_session

    session, user_agent = new_session(ENDPOINT_PREFIXES)
    config = Config(
        # total_max_attempts counts the first try; botocore's max_attempts would not.
        retries={"mode": "standard", "total_max_attempts": attempts},
        max_pool_connections=64,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        # Per call, botocore would otherwise rebuild the User-Agent twice from its parts and
        # validate every request against the service model: together about a fifth of a
        # call's CPU (bench/run.py). The User-Agent is made once per client instead (and names
        # cloudq); cloudq builds its requests itself and AWS still validates them.
        user_agent=user_agent,
        parameter_validation=False,
    )
    client = session.client(service, endpoint_url=endpoint_url, region_name=region, config=config)
    if http != "lean" or service not in LEAN_SERVICES:
        return client
    return _lean_client(service, session, client, config)


#: The services with a lean path (``aws_http="lean"``).
LEAN_SERVICES = ("sqs", "dynamodb")


def environment_alone() -> bool:
    """Whether the environment alone decides what botocore would resolve for a client: keys
    in ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (the first source of botocore's chain,
    and where Lambda puts a function's credentials), no profile named, no shared config file
    (one could name a profile's endpoint, CA bundle or FIPS), and neither FIPS nor dual-stack
    endpoints (whose names differ by service and partition). Then the lean path needs no
    botocore: its clients are made from the environment (``_lean_from_environment``)."""
    env = os.environ
    config_file = env.get("AWS_CONFIG_FILE") or os.path.join(os.path.expanduser("~"), ".aws", "config")
    return bool(
        env.get("AWS_ACCESS_KEY_ID")
        and env.get("AWS_SECRET_ACCESS_KEY")
        and not env.get("AWS_PROFILE")
        and not env.get("AWS_DEFAULT_PROFILE")
        and env.get("AWS_USE_DUALSTACK_ENDPOINT", "").lower() != "true"
        and env.get("AWS_USE_FIPS_ENDPOINT", "").lower() != "true"
        and not os.path.exists(config_file)
    )


def _environment_credentials() -> Any:
    """The keys in the environment now (read at every call, as a process may renew them)."""
    from cloudq.core.lean.sigv4 import Credentials

    env = os.environ
    return Credentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env.get("AWS_SESSION_TOKEN"))


def standard_endpoint(service: str, region: str) -> str:
    """The endpoint botocore resolves for ``service`` in ``region`` when nothing is configured
    (and neither FIPS nor dual-stack is asked for): ``https://<prefix>.<region>.<the
    partition's DNS suffix>``."""
    suffix = str(_partition_of(region).get("outputs", {}).get("dnsSuffix", "amazonaws.com"))
    return f"https://{ENDPOINT_PREFIXES[service]}.{region}.{suffix}"


def _configured_endpoint(service: str) -> str | None:
    """``AWS_ENDPOINT_URL_<SERVICE>`` or ``AWS_ENDPOINT_URL``, as botocore reads them."""
    env = os.environ
    if env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() == "true":
        return None
    return env.get(f"AWS_ENDPOINT_URL_{service.upper()}") or env.get("AWS_ENDPOINT_URL") or None


def _lean_from_environment(
    service: str, endpoint_url: str | None, region: str, timeouts: dict[str, Any], region_name: str | None
) -> Any:
    """The lean client of ``service`` from the environment alone (``environment_alone``): no
    boto3 client is made, nor botocore imported (most of a Lambda cold start's AWS cost, and
    of a worker's start-up), until a call that is not a hot one needs it."""
    from cloudq.core.lean.client import CLASSES
    from cloudq.core.lean.http import ca_bundle

    return CLASSES[service](
        endpoint_url=endpoint_url or _configured_endpoint(service) or standard_endpoint(service, region),
        region=region,
        credentials=_environment_credentials,
        read_timeout=timeouts["read_timeout"],
        connect_timeout=timeouts["connect_timeout"],
        attempts=timeouts["attempts"],
        user_agent=f"cloudq/{VERSION} lean",
        verify=ca_bundle(),
        fallback=lambda: aws_client(service, endpoint_url, region_name, **timeouts),
    )


def _lean_client(service: str, session: boto3.session.Session, client: Any, config: Config) -> Any:
    """The lean client of ``service``, on what botocore resolved for ``client``: its endpoint
    (``endpoint_url``, ``AWS_ENDPOINT_URL*``, FIPS, the partition), region, credentials (the
    whole provider chain, refreshable) and CA bundle; ``client`` serves the other calls."""
    from cloudq.core import aws_errors
    from cloudq.core.lean.client import CLASSES
    from cloudq.core.lean.sigv4 import Credentials

    found = session.get_credentials()

    def credentials() -> Credentials:
        if found is None:
            raise aws_errors.NoCredentialsError()
        frozen = found.get_frozen_credentials()
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token)

    return CLASSES[service](
        endpoint_url=client.meta.endpoint_url,
        region=client.meta.region_name,
        credentials=credentials,
        read_timeout=config.read_timeout,
        connect_timeout=config.connect_timeout,
        attempts=config.retries["total_max_attempts"],
        user_agent=config.user_agent,
        verify=session._session.get_config_variable("ca_bundle"),
        fallback=lambda: client,
    )
