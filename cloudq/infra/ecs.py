"""Long-polling workers on ECS Fargate, for the queues no Lambda function consumes.

A task definition running ``cloudq worker`` (the image is a parameter: the user's image with
their app and cloudq), a service in the given subnets, and target tracking on backlog per task
(visible messages over running tasks, metric math), as AWS advises for queue workers:
https://docs.aws.amazon.com/autoscaling/ec2/userguide/as-using-sqs-queue.html

Everything here is behind the ``WithWorkerService`` condition: the emulator sets
``WorkerService=false`` (it lacks Application Auto Scaling and runs no containers), and
cfn-lint still checks it all.
"""

from __future__ import annotations

from cloudq.infra.intrinsics import Template, get_att, ref, sub
from cloudq.infra.model import Resources

WORKER_CONDITION = "WithWorkerService"
#: Seconds running tasks get on SIGTERM (``cloudq worker --grace``), and what ECS waits on top
#: before SIGKILL (Fargate allows a stopTimeout of at most 120 s).
WORKER_GRACE_SECONDS = 25
STOP_TIMEOUT_MARGIN_SECONDS = 10
EXECUTION_POLICY = "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"


def worker_parameters() -> Template:
    return {
        "WorkerService": {
            "Type": "String",
            "Default": "true",
            "AllowedValues": ["true", "false"],
            "Description": "Run long-polling workers on ECS Fargate",
        },
        "WorkerImage": {"Type": "String", "Description": "Container image with the app and cloudq"},
        "WorkerSubnets": {"Type": "List<AWS::EC2::Subnet::Id>", "Description": "Subnets of the tasks"},
        "WorkerSecurityGroups": {
            "Type": "List<AWS::EC2::SecurityGroup::Id>",
            "Description": "Security groups of the tasks (outbound HTTPS to SQS and DynamoDB)",
        },
        "WorkerAssignPublicIp": {
            "Type": "String",
            "Default": "DISABLED",
            "AllowedValues": ["ENABLED", "DISABLED"],
        },
        "WorkerCpu": {
            "Type": "String",
            "Default": "256",
            "AllowedValues": ["256", "512", "1024", "2048", "4096"],
        },
        "WorkerMemory": {"Type": "String", "Default": "512", "Description": "MiB, valid for WorkerCpu"},
        "WorkerMinTasks": {"Type": "Number", "Default": 1, "MinValue": 1},
        "WorkerMaxTasks": {"Type": "Number", "Default": 10, "MinValue": 1},
        "BacklogPerTask": {
            "Type": "Number",
            "Default": 100,
            "MinValue": 1,
            "Description": "Visible messages one task may have waiting: latency target / seconds per task",
        },
    }


def _conditional(resource_type: str, properties: Template) -> Template:
    return {"Type": resource_type, "Condition": WORKER_CONDITION, "Properties": properties}


def worker_service(resources: Resources, environment: dict[str, str]) -> Template:
    if not resources.worker_queues():
        return {}
    return {
        "WorkerCluster": _conditional(
            "AWS::ECS::Cluster", {"ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}]}
        ),
        "WorkerServiceLogGroup": _conditional(
            "AWS::Logs::LogGroup",
            {"LogGroupName": f"/ecs/{resources.app}-worker", "RetentionInDays": ref("LogRetentionDays")},
        ),
        "WorkerExecutionRole": _conditional(
            "AWS::IAM::Role",
            {
                "Description": "Lets ECS pull the worker image and write its logs",
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                },
                "ManagedPolicyArns": [sub(EXECUTION_POLICY)],
            },
        ),
        "WorkerTaskDefinition": task_definition(resources, environment),
        "WorkerEcsService": _conditional(
            "AWS::ECS::Service",
            {
                "Cluster": ref("WorkerCluster"),
                "TaskDefinition": ref("WorkerTaskDefinition"),
                "LaunchType": "FARGATE",
                "DesiredCount": ref("WorkerMinTasks"),
                "NetworkConfiguration": {
                    "AwsvpcConfiguration": {
                        "Subnets": ref("WorkerSubnets"),
                        "SecurityGroups": ref("WorkerSecurityGroups"),
                        "AssignPublicIp": ref("WorkerAssignPublicIp"),
                    }
                },
            },
        ),
        **scaling(resources),
    }


def worker_command(resources: Resources) -> list[str]:
    queues = ",".join(queue.logical_name for queue in resources.worker_queues())
    return ["cloudq", "worker", resources.app_reference, "-Q", queues, "--grace", str(WORKER_GRACE_SECONDS)]


def task_definition(resources: Resources, environment: dict[str, str]) -> Template:
    container = {
        "Name": "worker",
        "Image": ref("WorkerImage"),
        "Essential": True,
        "Command": worker_command(resources),
        "StopTimeout": WORKER_GRACE_SECONDS + STOP_TIMEOUT_MARGIN_SECONDS,
        "Environment": [{"Name": key, "Value": value} for key, value in sorted(environment.items())],
        "LogConfiguration": {
            "LogDriver": "awslogs",
            "Options": {
                "awslogs-group": ref("WorkerServiceLogGroup"),
                "awslogs-region": ref("AWS::Region"),
                "awslogs-stream-prefix": "worker",
            },
        },
    }
    if not environment:
        del container["Environment"]
    return _conditional(
        "AWS::ECS::TaskDefinition",
        {
            "Family": f"{resources.app}-worker",
            "RequiresCompatibilities": ["FARGATE"],
            "NetworkMode": "awsvpc",
            "Cpu": ref("WorkerCpu"),
            "Memory": ref("WorkerMemory"),
            "ExecutionRoleArn": get_att("WorkerExecutionRole", "Arn"),
            "TaskRoleArn": get_att("WorkerRole", "Arn"),
            "ContainerDefinitions": [container],
        },
    )


def backlog_metrics(resources: Resources) -> list[Template]:
    """Backlog per task: the visible messages of the workers' queues over running tasks."""
    metrics: list[Template] = []
    for index, queue in enumerate(resources.worker_queues()):
        dimensions = [{"Name": "QueueName", "Value": get_att(queue.logical_id, "QueueName")}]
        metrics.append(
            _metric(f"visible{index}", "AWS/SQS", "ApproximateNumberOfMessagesVisible", dimensions)
        )
    service = [
        {"Name": "ClusterName", "Value": ref("WorkerCluster")},
        {"Name": "ServiceName", "Value": get_att("WorkerEcsService", "Name")},
    ]
    metrics.append(_metric("tasks", "ECS/ContainerInsights", "RunningTaskCount", service))
    visible = " + ".join(metric["Id"] for metric in metrics[:-1])
    metrics.append({"Id": "backlogpertask", "Expression": f"({visible}) / tasks", "ReturnData": True})
    return metrics


def _metric(metric_id: str, namespace: str, name: str, dimensions: list[Template]) -> Template:
    return {
        "Id": metric_id,
        "MetricStat": {
            "Metric": {"Namespace": namespace, "MetricName": name, "Dimensions": dimensions},
            "Stat": "Average",
        },
        "ReturnData": False,
    }


def scaling(resources: Resources) -> Template:
    return {
        "WorkerScalableTarget": _conditional(
            "AWS::ApplicationAutoScaling::ScalableTarget",
            {
                "ServiceNamespace": "ecs",
                "ScalableDimension": "ecs:service:DesiredCount",
                "ResourceId": sub("service/${WorkerCluster}/${WorkerEcsService.Name}"),
                "MinCapacity": ref("WorkerMinTasks"),
                "MaxCapacity": ref("WorkerMaxTasks"),
            },
        ),
        "WorkerScalingPolicy": _conditional(
            "AWS::ApplicationAutoScaling::ScalingPolicy",
            {
                "PolicyName": f"{resources.app}-backlog-per-task",
                "PolicyType": "TargetTrackingScaling",
                "ScalingTargetId": ref("WorkerScalableTarget"),
                "TargetTrackingScalingPolicyConfiguration": {
                    "TargetValue": ref("BacklogPerTask"),
                    "CustomizedMetricSpecification": {"Metrics": backlog_metrics(resources)},
                },
            },
        ),
    }
