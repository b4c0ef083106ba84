"""Deploy an app into an emulator as it is deployed on AWS: the rendered CloudFormation template
(``cloudq infra render``) as a stack, created or, on a second run, updated.

What the emulator is given that AWS is not:

- ``WorkerService=false``: the ECS workers and their scaling stay off (ministack lacks
  Application Auto Scaling and runs no containers; moto lacks it too). Workers run as
  ``cloudq worker`` processes instead.
- ``CodeS3Bucket``/``CodeS3Key``: the function's zip (``cloudq infra package``'s, given as
  ``artifact`` or built by ``package_app``) in the emulator's S3; ``EndpointUrl``: where
  the function's boto3 clients go; the deploying environment's ``CLOUDQ_*`` settings in the
  function's environment.

What the emulator's CloudFormation does not apply is finished by one named step,
``finish_unapplied``: the result table's TTL (neither ministack nor moto applies a
``TimeToLiveSpecification`` given in a template) and the payload bucket's lifecycle rules
(ministack does not apply a ``LifecycleConfiguration``; it stores the rules put through the
S3 API, and never expires objects).

The periodic tasks' schedules are deployed with the stack and fire in ministack (it sweeps
them every 10 s; ``rate()`` counts from the schedule's creation; time zones are not applied):
``emulator up`` runs no beat.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

from cloudq.infra import Resources
from cloudq.infra.render import render
from cloudq_emulator.lambda_package import function_environment, package_app
from cloudq_emulator.server import EmulatorError

#: The emulator's bucket for function code (AWS users bring their own: CodeS3Bucket).
CODE_BUCKET = "cloudq-emulator-code"
#: Placeholders for the ECS parameters, which ``WorkerService=false`` leaves unused.
UNUSED_WORKER_PARAMETERS = {
    "WorkerService": "false",
    "WorkerImage": "none",
    "WorkerSubnets": "subnet-00000001",
    "WorkerSecurityGroups": "sg-00000001",
}
STACK_TIMEOUT_SECONDS = 120.0
POLL_SECONDS = 0.1


@dataclass
class Deployment:
    """A deployed stack: physical ids as CloudFormation reports them (DescribeStackResources)."""

    stack_name: str
    #: logical id → physical id (a queue's URL, a table's or function's name)
    physical_ids: dict[str, str]
    warnings: list[str] = field(default_factory=list)


def provision(
    resources: Resources,
    *,
    endpoint_url: str | None = None,
    region_name: str = "us-east-1",
    environment: Mapping[str, str] | None = None,
    function_endpoint_url: str | None = None,
    client_options: Mapping[str, Any] | None = None,
    artifact: str | Path | None = None,
) -> Deployment:
    """Create or update the app's stack from its rendered template and wait for it; then
    ``finish_unapplied``. ``endpoint_url=None`` uses boto3's own (moto in-process, or
    ``AWS_ENDPOINT_URL``). ``function_endpoint_url`` (default ``endpoint_url``) is where the
    function's clients go. ``artifact``: the function's zip (default: built now). Idempotent."""

    def client(service: str) -> Any:
        options = client_options or {}
        return boto3.client(service, endpoint_url=endpoint_url, region_name=region_name, **options)

    warnings = resources.mapping_warnings()
    parameters = dict(UNUSED_WORKER_PARAMETERS) if resources.worker_queues() else {}
    variables = None
    if resources.function is not None:
        variables = function_environment(environment)
        parameters.update(_upload_code(client("s3"), resources, artifact))
        parameters["EndpointUrl"] = function_endpoint_url or endpoint_url or ""
    body = render(resources, "cloudformation", environment=variables)
    cloudformation = client("cloudformation")
    deploy_stack(cloudformation, resources.stack_name, body, parameters)
    finish_unapplied(resources, client("dynamodb"), client("s3"))
    return Deployment(resources.stack_name, physical_ids(cloudformation, resources.stack_name), warnings)


def _upload_code(s3: Any, resources: Resources, artifact: str | Path | None) -> dict[str, str]:
    assert resources.function is not None
    code = Path(artifact).read_bytes() if artifact else package_app(resources.function.app_reference)
    # A new key for new code, so that a stack update sees the change and updates the function.
    key = f"{resources.function.function_name}/{hashlib.sha256(code).hexdigest()[:16]}.zip"
    try:
        s3.create_bucket(Bucket=CODE_BUCKET)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    s3.put_object(Bucket=CODE_BUCKET, Key=key, Body=code)
    return {"CodeS3Bucket": CODE_BUCKET, "CodeS3Key": key}


def deploy_stack(cloudformation: Any, name: str, body: str, parameters: Mapping[str, str]) -> None:
    """Create the stack, or update it when it exists; wait until it is done."""
    request = {
        "StackName": name,
        "TemplateBody": body,
        "Parameters": [{"ParameterKey": key, "ParameterValue": value} for key, value in parameters.items()],
        "Capabilities": ["CAPABILITY_IAM"],
    }
    status = _status(cloudformation, name)
    if status in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED"):
        # A failed first create cannot be updated (as on AWS): start again.
        cloudformation.delete_stack(StackName=name)
        status = _wait(cloudformation, name)
    if status is None:
        cloudformation.create_stack(**request)
    else:
        try:
            cloudformation.update_stack(**request)
        except ClientError as exc:
            if "No updates are to be performed" not in str(exc):
                raise
            return
    final = _wait(cloudformation, name)
    if final not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        raise EmulatorError(f"stack {name}: {final}: {_failure(cloudformation, name)}")


def delete_stack(cloudformation: Any, name: str) -> None:
    cloudformation.delete_stack(StackName=name)
    _wait(cloudformation, name)


def _status(cloudformation: Any, name: str) -> str | None:
    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    status = str(stacks[0]["StackStatus"]) if stacks else None
    return None if status == "DELETE_COMPLETE" else status


def _wait(cloudformation: Any, name: str) -> str | None:
    deadline = time.monotonic() + STACK_TIMEOUT_SECONDS
    while True:
        status = _status(cloudformation, name)
        if status is None or not status.endswith("_IN_PROGRESS"):
            return status
        if time.monotonic() > deadline:
            raise EmulatorError(f"stack {name} still {status} after {STACK_TIMEOUT_SECONDS:.0f} s")
        time.sleep(POLL_SECONDS)


def _failure(cloudformation: Any, name: str) -> str:
    events = cloudformation.describe_stack_events(StackName=name)["StackEvents"]
    reasons = [
        f"{event['LogicalResourceId']}: {event.get('ResourceStatusReason', '')}"
        for event in events
        if event["ResourceStatus"].endswith("FAILED")
    ]
    return "; ".join(reasons) or "no reason given"


def physical_ids(cloudformation: Any, name: str) -> dict[str, str]:
    """Logical id → physical id of every resource of the stack."""
    found = cloudformation.describe_stack_resources(StackName=name)["StackResources"]
    # moto lists the resources it does not model (alarms, for one) without ids: skipped.
    return {
        resource["LogicalResourceId"]: resource["PhysicalResourceId"]
        for resource in found
        if "LogicalResourceId" in resource
    }


def finish_unapplied(resources: Resources, dynamodb: Any, s3: Any) -> None:
    """What the emulator's CloudFormation leaves out of the template: the table's TTL and
    the payload bucket's lifecycle rules."""
    if resources.bucket is not None:
        rules = [
            {"ID": rule_id, "Status": "Enabled", "Filter": {"Prefix": prefix}, "Expiration": {"Days": days}}
            for rule_id, prefix, days in resources.bucket.rules()
        ]
        s3.put_bucket_lifecycle_configuration(
            Bucket=resources.bucket.name, LifecycleConfiguration={"Rules": rules}
        )
    table = resources.table
    if table is None:
        return
    current = dynamodb.describe_time_to_live(TableName=table.name)["TimeToLiveDescription"]
    if current.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
        return
    dynamodb.update_time_to_live(
        TableName=table.name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
    )
