"""Deploy an app's Lambda worker into the emulator, as it would be deployed on AWS.

The function is the app's own code zipped (the top-level package of its ``module:app``), with
the handler ``cloudq.aws_lambda.handler`` and ``CLOUDQ_APP`` set; each queue in the app's
``lambda_queues`` gets an SQS event source mapping with ``ReportBatchItemFailures``, its batch
size, batching window and maximum concurrency. ministack then runs the trigger itself: it
polls the queue, builds the SQS event, invokes the handler in a warm local process with a
context whose deadline is the function timeout, kills an invocation past its timeout, and
deletes what the partial batch response does not list.

What ministack does not check, this module does, before creating a mapping, as AWS's
CreateEventSourceMapping does: a function timeout above the queue's visibility timeout is an
error; a visibility timeout under six times the function timeout is a warning.
"""

from __future__ import annotations

import importlib.util
import io
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

from cloudq.errors import ConfigurationError
from cloudq.infra import LambdaResource, Resources
from cloudq.infra.model import LAMBDA_VISIBILITY_FACTOR

#: The emulator runs functions with its own Python; the runtime names the one AWS would use.
RUNTIME = "python3.11"
ROLE = "arn:aws:iam::000000000000:role/cloudq-lambda-worker"
#: Settings of the deploying environment the function gets too (the app reads them at import).
PASSED_PREFIXES = ("CLOUDQ_",)
SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache"}


@dataclass
class DeployedFunction:
    name: str
    arn: str
    #: queue name → event source mapping UUID
    mappings: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def check_mapping(function_timeout: int, queue_name: str, visibility_timeout: int) -> str | None:
    """AWS's rule for an SQS event source mapping: an error above, a warning under 6x."""
    if function_timeout > visibility_timeout:
        raise ConfigurationError(
            f"queue {queue_name}: visibility timeout {visibility_timeout}s is less than the function "
            f"timeout {function_timeout}s (AWS refuses this mapping); raise the visibility timeout"
        )
    advised = LAMBDA_VISIBILITY_FACTOR * function_timeout
    if visibility_timeout < advised:
        return (
            f"queue {queue_name}: visibility timeout {visibility_timeout}s is under "
            f"{LAMBDA_VISIBILITY_FACTOR}x the function timeout {function_timeout}s; AWS advises at "
            f"least {advised}s so a retried batch does not overlap a running one"
        )
    return None


def package_app(app_reference: str) -> bytes:
    """A zip of the code behind ``module:app``: its top-level package (or lone module)."""
    module = app_reference.partition(":")[0]
    top = module.split(".")[0]
    spec = importlib.util.find_spec(top)
    if spec is None or spec.origin is None and not spec.submodule_search_locations:
        raise ConfigurationError(f"cannot find the code of {app_reference!r} to deploy")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if spec.submodule_search_locations:
            root = Path(list(spec.submodule_search_locations)[0])
            for path in sorted(root.rglob("*")):
                relative = path.relative_to(root.parent)
                if path.is_file() and not SKIPPED_PARTS & set(relative.parts) and path.suffix != ".pyc":
                    archive.write(path, relative.as_posix())
        else:
            assert spec.origin is not None
            archive.write(spec.origin, Path(spec.origin).name)
    return buffer.getvalue()


def function_environment(
    function: LambdaResource, extra: Mapping[str, str] | None = None, endpoint_url: str | None = None
) -> dict[str, str]:
    """``CLOUDQ_APP``, the deploying environment's ``CLOUDQ_*`` settings, and (emulator only)
    the endpoint the function's boto3 clients use."""
    env = {key: value for key, value in os.environ.items() if key.startswith(PASSED_PREFIXES)}
    env["CLOUDQ_APP"] = function.app_reference
    if endpoint_url:
        env["AWS_ENDPOINT_URL"] = endpoint_url
    env.update(extra or {})
    return env


def deploy_function(
    resources: Resources,
    *,
    endpoint_url: str,
    region_name: str = "us-east-1",
    environment: Mapping[str, str] | None = None,
    function_endpoint_url: str | None = None,
) -> DeployedFunction | None:
    """Create (or update) the app's function and its mappings; None when the app has none.

    Run ``provision`` first: the queues must exist. Idempotent.
    """
    function = resources.function
    if function is None:
        return None
    sqs = boto3.client("sqs", endpoint_url=endpoint_url, region_name=region_name)
    lam = boto3.client("lambda", endpoint_url=endpoint_url, region_name=region_name)
    queues = {queue.logical_name: queue for queue in resources.queues}
    arns: dict[str, str] = {}
    warnings: list[str] = []
    for logical in function.queues:
        name = queues[logical].name
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn", "VisibilityTimeout"])
        found = attributes["Attributes"]
        warning = check_mapping(function.timeout, name, int(found["VisibilityTimeout"]))
        if warning:
            warnings.append(warning)
        arns[name] = found["QueueArn"]

    env = function_environment(function, environment, function_endpoint_url or endpoint_url)
    arn = _put_function(lam, function, package_app(function.app_reference), env)
    deployed = DeployedFunction(function.function_name, arn, warnings=warnings)
    existing = {
        mapping["EventSourceArn"]: mapping["UUID"]
        for mapping in lam.list_event_source_mappings(FunctionName=function.function_name)[
            "EventSourceMappings"
        ]
    }
    for name, queue_arn in arns.items():
        options: dict[str, Any] = {
            "FunctionName": function.function_name,
            "BatchSize": function.batch_size,
            "MaximumBatchingWindowInSeconds": function.batching_window,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "Enabled": True,
        }
        if function.maximum_concurrency is not None:
            options["ScalingConfig"] = {"MaximumConcurrency": function.maximum_concurrency}
        if queue_arn in existing:
            lam.update_event_source_mapping(UUID=existing[queue_arn], **options)
            deployed.mappings[name] = existing[queue_arn]
        else:
            created = lam.create_event_source_mapping(EventSourceArn=queue_arn, **options)
            deployed.mappings[name] = created["UUID"]
    return deployed


def _put_function(lam: Any, function: LambdaResource, code: bytes, env: dict[str, str]) -> str:
    config = {
        "Runtime": RUNTIME,
        "Role": ROLE,
        "Handler": function.handler,
        "Timeout": function.timeout,
        "MemorySize": function.memory_mb,
        "Environment": {"Variables": env},
    }
    try:
        created = lam.create_function(FunctionName=function.function_name, Code={"ZipFile": code}, **config)
        return str(created["FunctionArn"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceConflictException":
            raise
    lam.update_function_code(FunctionName=function.function_name, ZipFile=code)
    _wait_updated(lam, function.function_name)
    updated = lam.update_function_configuration(FunctionName=function.function_name, **config)
    _wait_updated(lam, function.function_name)
    return str(updated["FunctionArn"])


def _wait_updated(lam: Any, name: str) -> None:
    lam.get_waiter("function_updated_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
