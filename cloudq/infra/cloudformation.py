"""The app's resources (``cloudq.infra.model``) as a CloudFormation template.

One template for AWS and the emulator:

- every queue with its dead-letter queue and redrive policy; FIFO where the name says so;
- the result table (on demand, key ``task_id``, TTL on ``expires_at``) for ``dynamodb://``;
- the Lambda worker for ``lambda_queues``: function (code from ``CodeS3Bucket``/``CodeS3Key``),
  log group, one event source mapping per queue with ``ReportBatchItemFailures``;
- long-polling workers on ECS Fargate for the other queues: task definition running
  ``cloudq worker``, service, and scaling on backlog per task (metric math), all behind the
  ``WithWorkerService`` condition (``WorkerService=false`` turns them off: the emulator lacks
  Application Auto Scaling and runs no containers);
- the payload store's bucket (``payload_store="s3://…"``) with its lifecycle rules;
- one EventBridge Scheduler schedule per periodic task, sending its fixed body to its queue;
  the schedule group of the app's run-time schedules (SQS apps, ``app.schedules``); the role
  Scheduler sends with (output ``SchedulerRoleArn``, the producers' ``scheduler_role_arn``);
- the worker/Lambda role and the producers' managed policy (``cloudq.infra.iam``);
- alarms on dead letters and on the age of the oldest message; a dashboard of the task
  metrics and the queues (``cloudq.infra.dashboard``); outputs.

Only names and numbers from the model appear here; this module decides the template's shape.
"""

from __future__ import annotations

from typing import Any

from cloudq.core.errors import ConfigurationError
from cloudq.infra import iam
from cloudq.infra.dashboard import dashboard
from cloudq.infra.ecs import WORKER_CONDITION, worker_parameters, worker_service
from cloudq.infra.intrinsics import Template, get_att, ref
from cloudq.infra.model import QueueResource, Resources

ALARM_CONDITION = "HasAlarmTopic"
SCHEDULE_GROUP_ID = "ScheduleGroup"
ENDPOINT_CONDITION = "HasEndpointUrl"
LOG_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653]


def template(resources: Resources, *, environment: dict[str, str] | None = None) -> Template:
    """The whole template. ``environment`` adds variables to the function and the workers
    (the emulator passes the deploying environment's ``CLOUDQ_*`` settings)."""
    _check_logical_ids(resources)
    resources.mapping_warnings()  # raises when AWS would refuse a mapping
    body: Template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"cloudq app {resources.app}: queues, results, workers and IAM "
        "(rendered by cloudq infra render)",
        "Parameters": parameters(resources),
        "Conditions": conditions(resources),
        "Resources": {},
        "Outputs": outputs(resources),
    }
    found = body["Resources"]
    found.update(queues(resources))
    found.update(table(resources))
    found.update(bucket(resources))
    found.update(schedules(resources))
    found.update(alarms(resources))
    found.update(dashboard(resources))
    found.update(roles(resources))
    found.update(function(resources, environment or {}))
    found.update(worker_service(resources, environment or {}))
    return body


def _check_logical_ids(resources: Resources) -> None:
    seen: dict[str, str] = {}
    for queue in resources.queues:
        other = seen.setdefault(queue.logical_id, queue.logical_name)
        if other != queue.logical_name:
            raise ConfigurationError(
                f"queues {other!r} and {queue.logical_name!r} map to the same CloudFormation id "
                f"{queue.logical_id!r}; rename one"
            )


def parameters(resources: Resources) -> Template:
    found: Template = {
        "AlarmTopicArn": {
            "Type": "String",
            "Default": "",
            "Description": "SNS topic the alarms notify (empty: no notification)",
        },
        "OldestMessageAlarmSeconds": {
            "Type": "Number",
            "Default": 900,
            "MinValue": 60,
            "Description": "Alarm when a queue's oldest message is older than this",
        },
        "LogRetentionDays": {"Type": "Number", "Default": 30, "AllowedValues": LOG_RETENTION_DAYS},
    }
    if resources.function is not None:
        found.update(
            {
                "CodeS3Bucket": {"Type": "String", "Description": "S3 bucket of the function's zip"},
                "CodeS3Key": {"Type": "String", "Description": "S3 key of the function's zip"},
                "EndpointUrl": {
                    "Type": "String",
                    "Default": "",
                    "Description": "Leave empty on AWS; the emulator sets its own endpoint here",
                },
            }
        )
    if resources.worker_queues():
        found.update(worker_parameters())
    return found


def conditions(resources: Resources) -> Template:
    found: Template = {ALARM_CONDITION: {"Fn::Not": [{"Fn::Equals": [ref("AlarmTopicArn"), ""]}]}}
    if resources.function is not None:
        found[ENDPOINT_CONDITION] = {"Fn::Not": [{"Fn::Equals": [ref("EndpointUrl"), ""]}]}
    if resources.worker_queues():
        found[WORKER_CONDITION] = {"Fn::Equals": [ref("WorkerService"), "true"]}
    return found


def _queue(name: str, queue: QueueResource, extra: Template) -> Template:
    properties: Template = {"QueueName": name}
    if queue.fifo:
        properties["FifoQueue"] = True
    properties["MessageRetentionPeriod"] = queue.message_retention_seconds
    return {"Type": "AWS::SQS::Queue", "Properties": {**properties, **extra}}


def queues(resources: Resources) -> Template:
    found: Template = {}
    for queue in resources.queues:
        found[queue.dead_letter_logical_id] = _queue(queue.dead_letter_name, queue, {})
        redrive = {
            "deadLetterTargetArn": get_att(queue.dead_letter_logical_id, "Arn"),
            "maxReceiveCount": queue.max_receive_count,
        }
        found[queue.logical_id] = _queue(
            queue.name, queue, {"VisibilityTimeout": queue.visibility_timeout, "RedrivePolicy": redrive}
        )
    return found


def table(resources: Resources) -> Template:
    if resources.table is None:
        return {}
    spec = resources.table
    return {
        "ResultTable": {
            "Type": "AWS::DynamoDB::Table",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "TableName": spec.name,
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": spec.key, "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": spec.key, "KeyType": "HASH"}],
                "TimeToLiveSpecification": {"AttributeName": spec.ttl_attribute, "Enabled": True},
            },
        }
    }


def bucket(resources: Resources) -> Template:
    spec = resources.bucket
    if spec is None:
        return {}
    rules = [
        {"Id": rule_id, "Status": "Enabled", "Prefix": prefix, "ExpirationInDays": days}
        for rule_id, prefix, days in spec.rules()
    ]
    blocked = ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
    return {
        spec.logical_id: {
            "Type": "AWS::S3::Bucket",
            "Properties": {
                "BucketName": spec.name,
                "LifecycleConfiguration": {"Rules": rules},
                "PublicAccessBlockConfiguration": dict.fromkeys(blocked, True),
            },
        }
    }


def schedules(resources: Resources) -> Template:
    if not resources.has_scheduler_role:
        return {}
    by_name = {queue.logical_name: queue for queue in resources.queues}
    found: Template = {
        "SchedulerRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Description": f"EventBridge Scheduler sends the scheduled tasks of {resources.app}",
                "AssumeRolePolicyDocument": iam.assume_role_policy([iam.SCHEDULER_PRINCIPAL]),
                "Policies": [
                    {"PolicyName": "cloudq-scheduler", "PolicyDocument": iam.scheduler_policy(resources)}
                ],
            },
        }
    }
    if resources.schedule_group is not None:
        found[SCHEDULE_GROUP_ID] = {
            "Type": "AWS::Scheduler::ScheduleGroup",
            "Properties": {"Name": resources.schedule_group},
        }
    for spec in resources.schedules:
        found[spec.logical_id] = {
            "Type": "AWS::Scheduler::Schedule",
            "Properties": {
                "Name": spec.name,
                "Description": f"cloudq periodic task {spec.logical_name}",
                "ScheduleExpression": spec.expression,
                "ScheduleExpressionTimezone": spec.timezone,
                "FlexibleTimeWindow": {"Mode": "OFF"},
                "State": "ENABLED",
                "Target": {
                    "Arn": get_att(by_name[spec.queue].logical_id, "Arn"),
                    "RoleArn": get_att("SchedulerRole", "Arn"),
                    "Input": spec.body,
                },
            },
        }
    return found


def _alarm(description: str, queue_id: str, metric: str, threshold: Any, periods: int) -> Template:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": description,
            "Namespace": "AWS/SQS",
            "MetricName": metric,
            "Dimensions": [{"Name": "QueueName", "Value": get_att(queue_id, "QueueName")}],
            "Statistic": "Maximum",
            "Period": 60,
            "EvaluationPeriods": periods,
            "Threshold": threshold,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": {"Fn::If": [ALARM_CONDITION, [ref("AlarmTopicArn")], ref("AWS::NoValue")]},
        },
    }


def alarms(resources: Resources) -> Template:
    found: Template = {}
    for queue in resources.queues:
        found[queue.logical_id.removesuffix("Queue") + "DeadLettersAlarm"] = _alarm(
            f"Messages in {queue.dead_letter_name}: see cloudq dlq list {queue.logical_name}",
            queue.dead_letter_logical_id,
            "ApproximateNumberOfMessagesVisible",
            0,
            1,
        )
        found[queue.logical_id.removesuffix("Queue") + "OldestMessageAlarm"] = _alarm(
            f"The oldest message in {queue.name} waits too long: workers are missing or too few",
            queue.logical_id,
            "ApproximateAgeOfOldestMessage",
            ref("OldestMessageAlarmSeconds"),
            5,
        )
    return found


def roles(resources: Resources) -> Template:
    return {
        "WorkerRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Description": f"cloudq workers and Lambda function of {resources.app}",
                "AssumeRolePolicyDocument": iam.assume_role_policy(iam.WORKER_PRINCIPALS),
                "Policies": [{"PolicyName": "cloudq-worker", "PolicyDocument": iam.worker_policy(resources)}],
            },
        },
        "ProducerPolicy": {
            "Type": "AWS::IAM::ManagedPolicy",
            "Properties": {
                "Description": f"Send {resources.app} tasks and read their results (attach to web roles)",
                "PolicyDocument": iam.producer_policy(resources),
            },
        },
    }


def function_environment(resources: Resources, environment: dict[str, str]) -> Template:
    assert resources.function is not None
    return {**environment, "CLOUDQ_APP": resources.function.app_reference}


def function(resources: Resources, environment: dict[str, str]) -> Template:
    spec = resources.function
    if spec is None:
        return {}
    variables: Template = function_environment(resources, environment)
    variables["AWS_ENDPOINT_URL"] = {"Fn::If": [ENDPOINT_CONDITION, ref("EndpointUrl"), ref("AWS::NoValue")]}
    found: Template = {
        "WorkerLogGroup": {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {
                "LogGroupName": iam.lambda_log_group(spec.function_name),
                "RetentionInDays": ref("LogRetentionDays"),
            },
        },
        "WorkerFunction": {
            "Type": "AWS::Lambda::Function",
            "DependsOn": "WorkerLogGroup",
            "Properties": {
                "FunctionName": spec.function_name,
                "Runtime": spec.runtime,
                "Handler": spec.handler,
                "Role": get_att("WorkerRole", "Arn"),
                "Timeout": spec.timeout,
                "MemorySize": spec.memory_mb,
                "Code": {"S3Bucket": ref("CodeS3Bucket"), "S3Key": ref("CodeS3Key")},
                "Environment": {"Variables": variables},
            },
        },
    }
    for queue in resources.queues:
        if queue.logical_name in spec.queues:
            found[queue.logical_id.removesuffix("Queue") + "Mapping"] = mapping(resources, queue)
    return found


def mapping_properties(resources: Resources, queue: QueueResource) -> Template:
    """The mapping of ``queue``: its ``MaximumConcurrency`` is its own (a priority lane may
    get more than its default lane), else the function's."""
    spec = resources.function
    assert spec is not None
    found: Template = {
        "BatchSize": spec.batch_size,
        "MaximumBatchingWindowInSeconds": spec.batching_window,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
    }
    concurrency = spec.concurrency_of(queue.logical_name)
    if concurrency is not None:
        found["ScalingConfig"] = {"MaximumConcurrency": concurrency}
    return found


def mapping(resources: Resources, queue: QueueResource) -> Template:
    return {
        "Type": "AWS::Lambda::EventSourceMapping",
        "Properties": {
            "EventSourceArn": get_att(queue.logical_id, "Arn"),
            "FunctionName": ref("WorkerFunction"),
            "Enabled": True,
            **mapping_properties(resources, queue),
        },
    }


def outputs(resources: Resources) -> Template:
    found: Template = {}
    for queue in resources.queues:
        found[queue.logical_id + "Url"] = {"Value": ref(queue.logical_id)}
        found[queue.dead_letter_logical_id + "Url"] = {"Value": ref(queue.dead_letter_logical_id)}
    if resources.table is not None:
        found["ResultTableName"] = {"Value": ref("ResultTable")}
    if resources.bucket is not None:
        found["PayloadBucketName"] = {"Value": ref(resources.bucket.logical_id)}
    found["ProducerPolicyArn"] = {
        "Description": "Attach to the roles of web backends that send tasks",
        "Value": ref("ProducerPolicy"),
    }
    found["WorkerRoleArn"] = {"Value": get_att("WorkerRole", "Arn")}
    if resources.schedule_group is not None:
        found["SchedulerRoleArn"] = {
            "Description": "The producers' scheduler_role_arn (CLOUDQ_SCHEDULER_ROLE_ARN), for app.schedules",
            "Value": get_att("SchedulerRole", "Arn"),
        }
    if resources.function is not None:
        found["WorkerFunctionName"] = {"Value": ref("WorkerFunction")}
    return found
