"""Settings, resolved once, in one place: constructor argument, then the app's settings source
(if it has one: a framework's settings, e.g. Django's ``settings.CLOUDQ``), then ``CLOUDQ_*``,
then default."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from cloudq.core.errors import ConfigurationError
from cloudq.core.naming import results_table_name
from cloudq.core.retry import DEFAULT_RETRY_POLICY

ENV_PREFIX = "CLOUDQ_"
#: Sentinel meaning "the caller did not pass this argument" (``None`` is a real value:
#: ``backend=None`` turns results off).
UNSET: Any = object()
#: The send path's defaults (``.delay()`` in a web request): see ``Settings.send_timeout``.
SEND_TIMEOUT_SECONDS = 1.0
SEND_ATTEMPTS = 2
#: Seconds a stopping worker gives running tasks to finish (``cloudq worker --grace``).
WORKER_GRACE_SECONDS = 25.0
#: Threads of a worker process (``cloudq worker -c``).
WORKER_CONCURRENCY = 8
#: The longest wait of one receive (SQS's long-poll limit; other engines keep it).
MAX_WAIT_SECONDS = 20.0
#: The default long-poll wait. A stopping worker waits for its polls in flight (SQS does not
#: cancel a poll whose client went away, and would hand it the next message), so this bounds an
#: idle worker's stop; an idle queue costs one empty receive per wait and worker (docs,
#: guides/workers.md#stopping).
WORKER_WAIT_SECONDS = 5.0


class Settings(BaseModel):
    """Every app-level setting. Durations are in seconds."""

    # Built on first use (the first app), not at ``import cloudq`` (issue 14).
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    # Each field's ``#:`` comment is its documentation: the docs site's settings reference is
    # generated from it (docs/_hooks/reference.py), and a test fails for a field without one.

    #: The broker: ``sqs://``, ``sqs://?endpoint_url=…&region=…``, ``redis://host:6379/0``,
    #: ``amqp://user:password@host:5672/vhost``, ``memory://``.
    broker: str = "sqs://"
    #: The result backend: ``dynamodb://table``, ``redis://…``, ``memory://``; ``None`` (or
    #: ``none`` in the environment) turns results off. Default: ``dynamodb://<app>-results``.
    backend: str | None = None
    #: The queue of tasks that name none.
    default_queue: str = "default"
    #: Long-poll wait of a receive, 0–20 seconds (SQS allows at most 20); a stopping worker
    #: waits for it.
    wait_seconds: float = WORKER_WAIT_SECONDS
    #: Seconds a received message stays hidden (asked for at receive); ``None`` keeps the
    #: queue's own (30 by default).
    visibility_timeout: int | None = None
    #: Sending (``.delay()`` in a web request): seconds to connect and to wait for each answer,
    #: so that a broker outage fails a request within about ``send_attempts * send_timeout + 1``
    #: seconds instead of hanging it.
    send_timeout: float = SEND_TIMEOUT_SECONDS
    #: Attempts of each send-path call, the first included.
    send_attempts: int = SEND_ATTEMPTS
    #: How SQS and DynamoDB calls travel: ``boto3``, or ``lean`` (the hot calls, such as
    #: receive, delete, send and the result writes, signed and sent by cloudq itself at
    #: about half the client CPU; every other call, credentials and endpoints stay botocore's:
    #: docs/guides/lean-path.md).
    aws_http: Literal["boto3", "lean"] = "boto3"
    #: A body limit below the broker's own (``Transport.max_message_bytes``; SQS, Redis,
    #: RabbitMQ: 1 MiB), e.g. to match a queue's MaximumMessageSize: larger messages are refused
    #: at ``.delay()``. ``None``: the broker's.
    max_message_bytes: int | None = None
    #: Claim check (``s3://bucket/prefix``, ``redis://…``, ``memory://``): arguments of a
    #: message over ``payload_threshold`` bytes, and results over the backend's item limit,
    #: go there and travel as a pointer. ``None``: off (too large stays an error).
    payload_store: str | None = None
    #: Message size (bytes) above which arguments are offloaded; ``None``: the broker's limit
    #: less 16 KiB (``cloudq.core.codec.PAYLOAD_HEADROOM_BYTES``).
    payload_threshold: int | None = None
    #: Delete a task's argument object once the task succeeded (else its lifecycle rule does).
    payload_delete_on_success: bool = True
    #: Seconds results are kept (DynamoDB TTL); 0 keeps them forever.
    result_ttl: int = 86_400
    #: HMAC keys (comma-separated in the environment); the first signs, all verify (rotation).
    #: Empty: signing off.
    signing_keys: tuple[str, ...] = ()
    #: Default ``max_retries`` of tasks that set none.
    max_retries: int = DEFAULT_RETRY_POLICY.max_retries
    #: Default ``retry_backoff_max`` (seconds) of tasks that set none.
    retry_backoff_max: float = DEFAULT_RETRY_POLICY.retry_backoff_max
    #: Per-task metrics as CloudWatch EMF lines on stdout (``1``/``true`` in the environment;
    #: ``cloudq.runtime.metrics``).
    metrics: bool = False
    #: Logical queues consumed by the app's Lambda function (SQS event source mappings;
    #: comma-separated in the environment); the others are for long-polling workers.
    lambda_queues: tuple[str, ...] = ()
    #: Queues Celery also uses (issue 25; comma-separated in the environment): named as Celery
    #: names them (no ``<app>-`` prefix, dead letters in ``<queue>-dlq``), holding Celery's task
    #: protocol 2 (JSON) in the broker's kombu form, read and written as such, and unsigned
    #: even when the app signs.
    celery_queues: tuple[str, ...] = ()
    #: Queues AWS Step Functions sends to (``.waitForTaskToken`` states; comma-separated in the
    #: environment; docs/guides/step-functions.md): a body carrying a task token is run only
    #: there, unsigned even when the app signs, and the worker/Lambda role may report back
    #: (``states:SendTask*``).
    stepfunctions_queues: tuple[str, ...] = ()
    #: Where ``app.schedules`` keeps run-time schedules: ``scheduler`` (EventBridge Scheduler,
    #: the app's schedule group) or ``backend`` (the result backend, sent by ``cloudq beat``).
    #: ``None``: the broker decides, ``scheduler`` for ``sqs://``, ``backend`` otherwise.
    schedule_store: Literal["scheduler", "backend"] | None = None
    #: The role EventBridge Scheduler sends with: the SchedulerRoleArn output of the stack.
    scheduler_role_arn: str | None = None
    #: Celery's result backend (``redis://…``, ``dynamodb://<table>``): where a run of a Celery
    #: queue's message also leaves its result in Celery's format, for Celery's
    #: ``AsyncResult.get()``. ``None``: only cloudq's record.
    celery_result_backend: str | None = None
    #: The Lambda function's timeout, seconds; its queues get a visibility timeout of 6× it.
    lambda_timeout: int = 30
    #: The Lambda function's memory, MB.
    lambda_memory_mb: int = 256
    #: The event source mapping's batch size.
    lambda_batch_size: int = 10
    #: The event source mapping's batching window, seconds.
    lambda_batching_window: int = 0
    #: The event source mapping's maximum concurrency (ScalingConfig.MaximumConcurrency,
    #: 2–1000); ``None``: no cap.
    lambda_maximum_concurrency: int | None = None
    #: The same per queue (``emails-high=20,emails=5``), over ``lambda_maximum_concurrency``.
    lambda_queue_concurrency: dict[str, int] = {}
    #: Logical queues with a high priority lane (``<queue>-high``, README "Flow control");
    #: the queue of a task declared with ``priority="high"`` has one as well.
    priority_queues: tuple[str, ...] = ()
    #: How a worker picks between the lanes: ``strict`` or ``weighted:H:L``.
    lanes: str = "strict"

    @field_validator("lanes")
    @classmethod
    def _lane_policy(cls, value: str) -> str:
        from cloudq.core.flow import LanePolicy

        try:
            return str(LanePolicy.parse(value))
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("lambda_queue_concurrency")
    @classmethod
    def _each_concurrency_in_aws_range(cls, value: dict[str, int]) -> dict[str, int]:
        for queue, cap in value.items():
            if not 2 <= cap <= 1000:
                raise ValueError(f"{queue}: must be between 2 and 1000 (SQS event source mapping limit)")
        return value

    @field_validator("lambda_maximum_concurrency")
    @classmethod
    def _concurrency_in_aws_range(cls, value: int | None) -> int | None:
        if value is not None and not 2 <= value <= 1000:
            raise ValueError("must be between 2 and 1000 (SQS event source mapping limit)")
        return value

    @field_validator("celery_result_backend")
    @classmethod
    def _celery_result_backend_known(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "dynamodb://")):
            raise ValueError(
                "must be a redis://… or dynamodb://<table> URL (Celery's result backends cloudq writes)"
            )
        return value

    @field_validator("send_timeout")
    @classmethod
    def _positive_timeout(cls, value: float) -> float:
        if not value > 0:
            raise ValueError("must be more than 0 seconds")
        return value

    @field_validator("send_attempts")
    @classmethod
    def _at_least_one_attempt(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value

    @field_validator("wait_seconds")
    @classmethod
    def _wait_in_sqs_range(cls, value: float) -> float:
        if not 0 <= value <= MAX_WAIT_SECONDS:
            raise ValueError(f"must be between 0 and {MAX_WAIT_SECONDS:g} (the SQS long-poll limit)")
        return value


class SettingsSource(Protocol):
    """Settings from a framework's own configuration, between constructor arguments and
    ``CLOUDQ_*`` (``cloudq.contrib.django.DjangoSettings`` reads ``settings.CLOUDQ``)."""

    #: Where the values come from, for error messages (``settings.CLOUDQ``).
    description: str

    def values(self, app_name: str) -> Mapping[str, Any]:
        """The settings given for ``app_name``: keys are ``Settings`` field names."""
        ...


def _from_source(app_name: str, source: SettingsSource | None) -> Mapping[str, Any]:
    if source is None:
        return {}
    values = source.values(app_name)
    unknown = set(values) - set(Settings.model_fields)
    if unknown:
        raise ConfigurationError(f"unknown setting(s) in {source.description}: {', '.join(sorted(unknown))}")
    return values


def _from_env(name: str, environ: Mapping[str, str]) -> Any:
    raw = environ.get(ENV_PREFIX + name.upper())
    if raw is None:
        return UNSET
    if name in ("backend", "payload_store", "celery_result_backend") and raw.strip().lower() in ("", "none"):
        return None
    if name in ("signing_keys", "lambda_queues", "celery_queues", "stepfunctions_queues", "priority_queues"):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if name == "lambda_queue_concurrency":  # emails-high=20,emails=5
        pairs = (part.partition("=") for part in raw.split(",") if part.strip())
        return {queue.strip(): cap.strip() for queue, _, cap in pairs}
    return raw


def load_settings(
    app_name: str,
    overrides: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    source: SettingsSource | None = None,
) -> Settings:
    """Argument over the source over ``CLOUDQ_<NAME>`` over default, for every field of
    ``Settings``."""
    env = os.environ if environ is None else environ
    from_source = _from_source(app_name, source)
    values: dict[str, Any] = {}
    for name in Settings.model_fields:
        value = overrides.get(name, UNSET)
        if value is UNSET:
            value = from_source.get(name, UNSET)
        if value is UNSET:
            value = _from_env(name, env)
        if value is not UNSET:
            values[name] = value
    if "backend" not in values:
        values["backend"] = f"dynamodb://{results_table_name(app_name)}"
    try:
        return Settings(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        where = f"argument, {source.description} or " if source else "argument or "
        raise ConfigurationError(
            f"setting {field!r} ({where}{ENV_PREFIX}{field.upper()}): {first['msg']}"
        ) from None
