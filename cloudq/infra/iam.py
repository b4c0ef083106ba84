"""Least-privilege IAM for an app: the worker/Lambda role and the producers' managed policy.

Each statement lists only the actions cloudq makes, on the app's own queues and table (no ``*``
action, no ``*`` resource). The e2e IAM test counts the calls made at the HTTP level and
checks both ways: every call is allowed here, and every action here is called or is in
``DOCUMENTED_REQUIRED`` below with its source.

Where each action comes from (a batch API is authorised by its single action):

- ``sqs:GetQueueUrl``: every engine resolves a queue's URL once (``SQSTransport``).
- ``sqs:SendMessage``: ``.delay()`` (SendMessageBatch); retries past the longest delay (hops),
  dead-lettering by the executor, and tasks that send tasks.
- ``sqs:ReceiveMessage``, ``sqs:DeleteMessage``: the long-polling worker (DeleteMessageBatch);
  the event source mapping, with the function's role.
- ``sqs:ChangeMessageVisibility``: retries (the same message, hidden for the backoff), the
  visibility heartbeat (ChangeMessageVisibilityBatch), hand-backs.
- ``sqs:GetQueueAttributes``: queue statistics (``cloudq dlq``, the worker's backlog lines);
  required for the event source mapping.
- ``dynamodb:GetItem``: ``AsyncResult.get()``, the idempotency check; ``dynamodb:PutItem``,
  ``dynamodb:UpdateItem``: results, claims (conditional writes), a chord's member count, and
  flow control's items in the same table (``rate#`` buckets, ``lease#`` caps, progress
  reports: ``cloudq.backends.dynamodb_flow``), so they need no action of their own.
- ``s3:PutObject``, ``s3:GetObject``, ``s3:DeleteObject`` (the payload bucket, under its
  prefix): producers write large arguments and read large results; workers read arguments,
  write large results and delete argument objects after success (``cloudq.core.codec``).
- The scheduler role: ``sqs:SendMessage`` to the queues of periodic tasks (and, with the
  schedule group of run-time schedules, to every standard queue), for EventBridge Scheduler
  (not called by cloudq).
- ``scheduler:CreateSchedule``, ``scheduler:DeleteSchedule`` (producers, on the schedules of
  the app's group only): ``app.schedules.create`` and ``.delete``; ``iam:PassRole`` of the
  scheduler role only, to Scheduler only: CreateSchedule passes it. Listing
  (``ListSchedules`` has no resource-level permission) is left to operators' credentials.
- ``dynamodb:BatchGetItem``: ``GroupResult.get()``; a chord's callback reads its members'
  results. Revoking (``cloudq revoke``, ``AsyncResult.revoke()``) is an ``UpdateItem``, left
  to operators' credentials, not the producers' policy.
- ``logs:CreateLogGroup``, ``logs:CreateLogStream``, ``logs:PutLogEvents``: Lambda logging.
- ``states:SendTaskSuccess``, ``states:SendTaskFailure``, ``states:SendTaskHeartbeat``: reports
  to the Step Functions states that sent a task (``cloudq.runtime.task_tokens``), only for an
  app with ``stepfunctions_queues``. On ``*``: these actions have no resource-level
  permissions (the task token is the capability).
"""

from __future__ import annotations

from typing import Any

from cloudq.infra.model import Resources

POLICY_VERSION = "2012-10-17"

#: Actions the role needs though cloudq itself never calls them, with where AWS says so.
DOCUMENTED_REQUIRED: dict[str, str] = {
    "sqs:ReceiveMessage": "SQS event source mapping execution role, "
    "https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html#events-sqs-permissions",
    "sqs:DeleteMessage": "SQS event source mapping execution role, "
    "https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html#events-sqs-permissions",
    "sqs:GetQueueAttributes": "SQS event source mapping execution role, "
    "https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html#events-sqs-permissions",
    "logs:CreateLogGroup": "Lambda logging (AWSLambdaBasicExecutionRole), "
    "https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs.html",
    "logs:CreateLogStream": "Lambda logging (AWSLambdaBasicExecutionRole), "
    "https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs.html",
    "logs:PutLogEvents": "Lambda logging (AWSLambdaBasicExecutionRole), "
    "https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs.html",
    "iam:PassRole": "a dependent action of scheduler:CreateSchedule (the target's role), "
    "https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoneventbridgescheduler.html",
}

WORKER_SQS_ACTIONS = [
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "sqs:ReceiveMessage",
    "sqs:SendMessage",
]
PRODUCER_SQS_ACTIONS = ["sqs:GetQueueUrl", "sqs:SendMessage"]
WORKER_TABLE_ACTIONS = [
    "dynamodb:BatchGetItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
]
PRODUCER_TABLE_ACTIONS = ["dynamodb:BatchGetItem", "dynamodb:GetItem"]
LAMBDA_LOG_ACTIONS = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
WORKER_BUCKET_ACTIONS = ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
PRODUCER_BUCKET_ACTIONS = ["s3:GetObject", "s3:PutObject"]
PRODUCER_SCHEDULE_ACTIONS = ["scheduler:CreateSchedule", "scheduler:DeleteSchedule"]
SCHEDULER_PRINCIPAL = "scheduler.amazonaws.com"
STEPFUNCTIONS_ACTIONS = ["states:SendTaskFailure", "states:SendTaskHeartbeat", "states:SendTaskSuccess"]
#: Who may assume the worker role: the Lambda function and the ECS tasks.
WORKER_PRINCIPALS = ["ecs-tasks.amazonaws.com", "lambda.amazonaws.com"]


def arn(service: str, resource: str) -> dict[str, str]:
    """An ARN in the stack's partition, region and account (``Fn::Sub``)."""
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{resource}"}


def queue_arns(resources: Resources) -> list[dict[str, str]]:
    """Every queue of the app and its dead-letter queue (the executor sends there itself)."""
    names = [name for queue in resources.queues for name in (queue.name, queue.dead_letter_name)]
    return [arn("sqs", name) for name in names]


def bucket_objects(resources: Resources) -> list[dict[str, str]]:
    """The payload bucket's objects under the store's prefix (an S3 ARN has no region or
    account)."""
    assert resources.bucket is not None
    return [{"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::{resources.bucket.name}/{resources.bucket.prefix}*"}]


def lambda_log_group(function_name: str) -> str:
    """Where Lambda writes a function's logs."""
    return f"/aws/lambda/{function_name}"


def _statement(sid: str, actions: list[str], resources: list[Any]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": sorted(actions), "Resource": resources}


def worker_policy(resources: Resources) -> dict[str, Any]:
    """What a worker process or the Lambda function calls."""
    statements = [_statement("Queues", WORKER_SQS_ACTIONS, queue_arns(resources))] if resources.queues else []
    if resources.table is not None:
        statements.append(
            _statement("Results", WORKER_TABLE_ACTIONS, [arn("dynamodb", f"table/{resources.table.name}")])
        )
    if resources.bucket is not None:
        statements.append(_statement("Payloads", WORKER_BUCKET_ACTIONS, bucket_objects(resources)))
    if resources.function is not None:
        group = lambda_log_group(resources.function.function_name)
        statements.append(_statement("Logs", LAMBDA_LOG_ACTIONS, [arn("logs", f"log-group:{group}:*")]))
    if resources.stepfunctions:
        statements.append(_statement("StepFunctionsCallbacks", STEPFUNCTIONS_ACTIONS, ["*"]))
    return {"Version": POLICY_VERSION, "Statement": statements}


def producer_policy(resources: Resources) -> dict[str, Any]:
    """What a web backend calls: ``.delay()`` and fetching results."""
    senders = [arn("sqs", queue.name) for queue in resources.queues]
    statements = [_statement("SendTasks", PRODUCER_SQS_ACTIONS, senders)] if senders else []
    if resources.table is not None:
        statements.append(
            _statement(
                "ReadResults", PRODUCER_TABLE_ACTIONS, [arn("dynamodb", f"table/{resources.table.name}")]
            )
        )
    if resources.bucket is not None:
        statements.append(_statement("Payloads", PRODUCER_BUCKET_ACTIONS, bucket_objects(resources)))
    if resources.schedule_group is not None:
        statements += _schedule_statements(resources.schedule_group)
    return {"Version": POLICY_VERSION, "Statement": statements}


def _schedule_statements(group: str) -> list[dict[str, Any]]:
    """Manage the schedules of the app's group, passing the scheduler role to Scheduler only."""
    schedules = arn("scheduler", f"schedule/{group}/*")
    passing = _statement("PassSchedulerRole", ["iam:PassRole"], [{"Fn::Sub": "${SchedulerRole.Arn}"}])
    passing["Condition"] = {"StringEquals": {"iam:PassedToService": SCHEDULER_PRINCIPAL}}
    return [_statement("ManageSchedules", PRODUCER_SCHEDULE_ACTIONS, [schedules]), passing]


def scheduler_policy(resources: Resources) -> dict[str, Any]:
    """What EventBridge Scheduler needs to send the scheduled tasks to their queues: those of
    the periodic tasks, and every standard queue where run-time schedules may send."""
    names = {queue.logical_name: queue.name for queue in resources.queues}
    targets = sorted({names[schedule.queue] for schedule in resources.schedules})
    if resources.schedule_group is not None:
        targets = sorted({*targets, *(queue.name for queue in resources.queues if not queue.fifo)})
    statement = _statement("SendPeriodicTasks", ["sqs:SendMessage"], [arn("sqs", name) for name in targets])
    return {"Version": POLICY_VERSION, "Statement": [statement]}


def assume_role_policy(services: list[str]) -> dict[str, Any]:
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": sorted(services)}, "Action": "sts:AssumeRole"}
        ],
    }


def iam_documents(resources: Resources) -> dict[str, Any]:
    """``--format iam``: the documents, with ARNs as ``Fn::Sub`` patterns written out."""
    documents = {
        "WorkerRole": {
            "AssumeRolePolicyDocument": assume_role_policy(WORKER_PRINCIPALS),
            "PolicyDocument": worker_policy(resources),
        },
        "ProducerPolicy": {"PolicyDocument": producer_policy(resources)},
    }
    if resources.has_scheduler_role:
        documents["SchedulerRole"] = {
            "AssumeRolePolicyDocument": assume_role_policy([SCHEDULER_PRINCIPAL]),
            "PolicyDocument": scheduler_policy(resources),
        }
    return _unsubstituted(documents)  # type: ignore[no-any-return]


def _unsubstituted(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"Fn::Sub"}:
            return value["Fn::Sub"]
        return {key: _unsubstituted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unsubstituted(item) for item in value]
    return value
