"""The app as a Serverless Framework (v3) ``serverless.yml``: the Lambda worker with ``sqs``
events, and under ``resources:`` the same queues, table, alarms and IAM as the CloudFormation
template (``cloudq.infra.cloudformation``). Long-polling ECS workers are left to that template.

The function's code is the zip ``cloudq infra package`` builds (``package: artifact:``, at
``default_artifact``): serverless uploads it as it is, so nothing depends on what lies next to
``serverless.yml``.
"""

from __future__ import annotations

from typing import Any

from cloudq.infra import cloudformation as cfn
from cloudq.infra.intrinsics import Template, get_att, sub
from cloudq.infra.model import Resources
from cloudq.infra.package import default_artifact

FRAMEWORK_VERSION = "3"


def function_events(resources: Resources) -> list[Template]:
    spec = resources.function
    assert spec is not None
    events = []
    for queue in resources.queues:
        if queue.logical_name not in spec.queues:
            continue
        event: Template = {
            "arn": get_att(queue.logical_id, "Arn"),
            "batchSize": spec.batch_size,
            "maximumBatchingWindow": spec.batching_window,
            "functionResponseType": "ReportBatchItemFailures",
        }
        concurrency = spec.concurrency_of(queue.logical_name)
        if concurrency is not None:
            event["maximumConcurrency"] = concurrency
        events.append({"sqs": event})
    return events


def serverless(resources: Resources) -> Template:
    """The whole ``serverless.yml``; the app must have ``lambda_queues``."""
    from cloudq.core.errors import ConfigurationError

    spec = resources.function
    if spec is None:
        raise ConfigurationError(
            f"app {resources.app} has no lambda_queues: nothing for serverless.yml to deploy; "
            "use --format cloudformation"
        )
    resources.mapping_warnings()
    whole = cfn.template(resources)
    kept = {
        name: value
        for name, value in whole["Resources"].items()
        if value["Type"] not in SERVERLESS_OWNED and "Condition" not in value
    }
    conditions = {cfn.ALARM_CONDITION: whole["Conditions"][cfn.ALARM_CONDITION]}
    parameters = {name: whole["Parameters"][name] for name in ("AlarmTopicArn", "OldestMessageAlarmSeconds")}
    outputs = {name: value for name, value in whole["Outputs"].items() if name != "WorkerFunctionName"}
    function: dict[str, Any] = {
        "name": spec.function_name,
        "handler": spec.handler,
        # Fn::Sub, not Fn::GetAtt: serverless adds a DependsOn to a GetAtt role, which cfn-lint
        # flags as redundant (W3005).
        "role": sub("${WorkerRole.Arn}"),
        "timeout": spec.timeout,
        "memorySize": spec.memory_mb,
        "environment": cfn.function_environment(resources, {}),
        "events": function_events(resources),
    }
    return {
        "service": resources.app,
        "frameworkVersion": FRAMEWORK_VERSION,
        "provider": {"name": "aws", "runtime": spec.runtime, "region": "${opt:region, 'us-east-1'}"},
        "package": {"artifact": default_artifact(resources.app)},
        "functions": {"worker": function},
        "resources": {
            "Parameters": parameters,
            "Conditions": conditions,
            "Resources": kept,
            "Outputs": outputs,
        },
    }


#: What serverless makes itself from ``functions:`` (function, mappings, its log group).
SERVERLESS_OWNED = {"AWS::Lambda::Function", "AWS::Lambda::EventSourceMapping", "AWS::Logs::LogGroup"}
