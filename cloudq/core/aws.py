"""boto3 clients for the AWS engines, configured in one place."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import boto3
import botocore.exceptions
import botocore.loaders
import botocore.session
from botocore.config import Config

from cloudq.core.distribution import VERSION

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


class _FileLoader:
    """botocore's JSON file loader, keeping of endpoints.json only the entries of the services
    in ``ENDPOINT_PREFIXES``. Parsed whole, that file is 6.7 MiB of dicts, the largest part of
    an idle worker's heap, for the hundreds of services cloudq never calls (issue 14); every
    partition and its regions are kept, so region checks and endpoints are as before."""

    def __init__(self) -> None:
        self._files = botocore.loaders.JSONFileLoader()

    def exists(self, file_path: str) -> bool:
        return bool(self._files.exists(file_path))

    def load_file(self, file_path: str) -> Any:
        data = self._files.load_file(file_path)
        if data is None or os.path.basename(file_path) != "endpoints":
            return data
        kept = set(ENDPOINT_PREFIXES.values())
        partitions = [
            {**partition, "services": {k: v for k, v in partition["services"].items() if k in kept}}
            for partition in data.get("partitions", [])
        ]
        return {**data, "partitions": partitions}


class _Loader(botocore.loaders.Loader):  # type: ignore[misc]  # botocore is untyped
    """botocore's data loader, knowing only the services in ``ENDPOINT_PREFIXES``. To check
    that a service exists before loading its model, botocore lists every service it has
    data for: about 430 folders, 900 ``stat`` calls for each kind of model (the service
    model, the endpoint rule set), ~14 ms of the first client of a process, a Lambda cold
    start's included (issue 14). cloudq only loads the models of its own services: each is
    looked for in its own folder (``list_api_versions``), as botocore then does anyway."""

    def list_available_services(self, type_name: str) -> list[str]:
        return [service for service in sorted(ENDPOINT_PREFIXES) if self._has(service, type_name)]

    def _has(self, service: str, type_name: str) -> bool:
        try:
            return bool(self.list_api_versions(service, type_name))
        except botocore.exceptions.DataNotFoundError:
            return False


#: One data loader for every client of the process: the service models and endpoints.json
#: are read and parsed once, not once per client (a worker has two SQS clients and a
#: DynamoDB one; measured in bench/bench_cold.py). Sessions stay one per client, so
#: credentials and settings are still resolved for each, as before.
_loader = _Loader(file_loader=_FileLoader())
_loader_lock = threading.Lock()


def _session() -> tuple[boto3.session.Session, str]:
    """A session on the shared loader, and the User-Agent its clients send."""
    core = botocore.session.get_session()
    core.register_component("data_loader", _loader)
    with _loader_lock:
        session = boto3.session.Session(botocore_session=core)
        # boto3 appends its own data folder to the loader's search path on every session.
        _loader.search_paths[:] = list(dict.fromkeys(_loader.search_paths))
    return session, f"{core.user_agent()} cloudq/{VERSION}"


def warn_unknown_region(session: boto3.session.Session, service: str, region: str) -> None:
    """Warn (once per region) about a region AWS does not have, such as the typo ``us-east1``:
    every call would fail later as a missing queue or an unreachable endpoint. The regions
    come from botocore's ``partitions.json``, which client creation reads anyway (the shared
    loader keeps it), not from the much larger ``endpoints.json``."""
    if region in _checked_regions:
        return
    _checked_regions.add(region)
    partitions = _loader.load_data("partitions")
    known = {name for partition in partitions.get("partitions", ()) for name in partition.get("regions", {})}
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
    import re

    for found in _loader.load_data("partitions").get("partitions", ()):
        outputs = found.get("outputs", {})
        if region in found.get("regions", {}) or re.match(found.get("regionRegex", "^$"), region):
            return str(outputs.get("name", found.get("id", "aws")))
    return "aws"


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
    ``cloudq.core.lean`` and whose other calls are this boto3 client's."""
    if service not in ENDPOINT_PREFIXES:  # a mistake in cloudq itself, not the user's
        raise ValueError(f"add {service!r} and its endpoints.json name to cloudq.core.aws.ENDPOINT_PREFIXES")
    region = (
        region_name or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    )
    if http == "lean" and service in LEAN_SERVICES and lambda_environment():
        timeouts = {"read_timeout": read_timeout, "connect_timeout": connect_timeout, "attempts": attempts}
        return _lean_from_environment(service, endpoint_url, region, timeouts, region_name)
    session, user_agent = _session()
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
    warn_unknown_region(session, service, region)
    client = session.client(service, endpoint_url=endpoint_url, region_name=region, config=config)
    if http != "lean" or service not in LEAN_SERVICES:
        return client
    return _lean_client(service, session, client, config)


#: The services with a lean path (``aws_http="lean"``).
LEAN_SERVICES = ("sqs", "dynamodb")


def lambda_environment() -> bool:
    """Whether this process is a Lambda function's with what the lean path needs in its
    environment: Lambda puts the function's credentials and region there. FIPS and dual-stack
    endpoints (whose names differ by service and partition) are left to botocore."""
    env = os.environ
    return bool(
        env.get("AWS_LAMBDA_FUNCTION_NAME")
        and env.get("AWS_ACCESS_KEY_ID")
        and env.get("AWS_SECRET_ACCESS_KEY")
        and env.get("AWS_USE_DUALSTACK_ENDPOINT", "").lower() != "true"
        and env.get("AWS_USE_FIPS_ENDPOINT", "").lower() != "true"
    )


def standard_endpoint(service: str, region: str) -> str:
    """The endpoint botocore resolves for ``service`` in ``region`` when nothing is configured
    (and neither FIPS nor dual-stack is asked for): ``https://<prefix>.<region>.<the
    partition's DNS suffix>``."""
    import re

    suffix = "amazonaws.com"
    for found in _loader.load_data("partitions").get("partitions", ()):
        if region in found.get("regions", {}) or re.match(found.get("regionRegex", "^$"), region):
            suffix = str(found.get("outputs", {}).get("dnsSuffix", suffix))
            break
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
    """On Lambda, the lean client of ``service`` from the environment alone: no boto3 client
    is made (botocore's client creation is most of a cold start's AWS cost) until a call
    that is not a hot one needs it."""
    from cloudq.core.lean.client import CLASSES
    from cloudq.core.lean.http import ca_bundle
    from cloudq.core.lean.sigv4 import Credentials

    env = os.environ
    frozen = Credentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env.get("AWS_SESSION_TOKEN"))
    return CLASSES[service](
        endpoint_url=endpoint_url or _configured_endpoint(service) or standard_endpoint(service, region),
        region=region,
        credentials=lambda: frozen,
        read_timeout=timeouts["read_timeout"],
        connect_timeout=timeouts["connect_timeout"],
        attempts=timeouts["attempts"],
        user_agent=f"Botocore/{botocore.__version__} cloudq/{VERSION} lean",
        verify=ca_bundle(),
        fallback=lambda: aws_client(service, endpoint_url, region_name, **timeouts),
    )


def _lean_client(service: str, session: boto3.session.Session, client: Any, config: Config) -> Any:
    """The lean client of ``service``, on what botocore resolved for ``client``: its endpoint
    (``endpoint_url``, ``AWS_ENDPOINT_URL*``, FIPS, the partition), region, credentials (the
    whole provider chain, refreshable) and CA bundle; ``client`` serves the other calls."""
    from cloudq.core.lean.client import CLASSES
    from cloudq.core.lean.sigv4 import Credentials

    found = session.get_credentials()

    def credentials() -> Credentials:
        if found is None:
            raise botocore.exceptions.NoCredentialsError()
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
