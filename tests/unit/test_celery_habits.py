"""Celery's habits on cloudq (issue 25): the send options a Celery user passes, and the rows
of the option table (docs/guides/celery.md) marked "mapped", each checked here."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from cloudq import CloudQ, Task, shared_task
from cloudq.core.errors import ArgumentError, ConfigurationError, TaskRegistrationError
from cloudq.options import from_celery_settings
from cloudq.testing import drain


def memory_app(**settings: object) -> CloudQ:
    return CloudQ("habits", broker="memory://", backend="memory://", celery_queues=("celery",), **settings)


def test_protocol_celery_to_a_queue_that_is_not_celerys_is_refused_with_the_setting() -> None:
    app = memory_app()
    with pytest.raises(ConfigurationError, match="celery_queues"):
        app.send_task("proj.tasks.add", args=(1, 2), queue="emails", protocol="celery")


def test_protocol_cloudq_to_a_celery_queue_is_refused() -> None:
    app = memory_app()
    with pytest.raises(ConfigurationError, match="one of celery_queues"):
        app.send_task("proj.tasks.add", args=(1, 2), queue="celery", protocol="cloudq")


def test_an_unknown_protocol_is_refused() -> None:
    app = memory_app()
    with pytest.raises(ArgumentError, match="protocol must be one of cloudq, celery"):
        app.send_task("proj.tasks.add", queue="celery", protocol="amqp")


def test_protocol_celery_to_a_celery_queue_sends_celerys_format() -> None:
    # Given an app serving the Celery queue "celery"
    app = memory_app()
    # When it sends there asking for Celery's protocol
    sent = app.send_task("proj.tasks.add", args=(1, 2), queue="celery", protocol="celery")
    # Then the body is kombu's message of Celery's task protocol 2
    [received] = app.transport.receive("celery", 1, wait_seconds=0)
    message = app.codec.decode(received.body, None, "celery")
    assert message.id == sent.id and message.from_celery and '"headers"' in received.body


def test_a_priority_outside_celerys_range_is_refused_with_a_clear_message() -> None:
    app = memory_app(priority_queues=("default",))

    @app.task(name="proj.tasks.add")
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(ArgumentError, match="an integer 0-255"):
        add.apply_async((1, 2), priority=256)
    with pytest.raises(ArgumentError, match="no high priority lane"):
        app.send_task("proj.tasks.add", args=(1, 2), queue="emails", priority=9)


def test_request_retries_counts_the_runs_before_this_one() -> None:
    # Given a bound task that retries until Celery's request.retries reaches 2
    app = memory_app()

    @app.task(name="habits.retrying", bind=True)
    def retrying(self: Task[Any, Any]) -> int:
        if self.request.retries < 2:
            raise self.retry(countdown=0)
        return self.request.retries

    # When it runs to its end
    result = retrying.delay()
    drain(app, ["default"])
    # Then its third run saw two retries before it
    assert result.get(timeout=1) == 2


def test_a_shared_task_is_on_every_app_and_is_sent_through_the_app_created_last() -> None:
    # Given an app, then a shared task (a library's), then another app
    early = memory_app()

    @shared_task(name="habits.shared.double")
    def double(x: int) -> int:
        return 2 * x

    late = CloudQ("habits-late", broker="memory://", backend="memory://")
    # Then both apps have it
    assert "habits.shared.double" in early.tasks and "habits.shared.double" in late.tasks
    # And .delay() sends through the current app (created last), whose worker runs it
    result = double.delay(21)
    assert result.app is late
    drain(late, ["default"])
    assert result.get(timeout=1) == 42 and double(2) == 4


# -- the "mapped" rows of the option table (docs/guides/celery.md) ----------------------


def _task(**options: Any) -> Task[Any, Any]:
    app = memory_app()

    @app.task(name="habits.mapped", **options)
    def mapped() -> None:
        return None

    return mapped


def _row_default_retry_delay() -> None:
    # a constant delay, as Celery's self.retry() without a countdown waits
    policy = _task(default_retry_delay=7).policy
    assert [policy.delay_for(attempt) for attempt in (1, 2, 5)] == [7, 7, 7]


def _row_retry_backoff_seconds() -> None:
    # Celery's retry_backoff=N: exponential from N seconds
    policy = _task(retry_backoff=3, retry_jitter=False).policy
    assert [policy.delay_for(attempt) for attempt in (1, 2, 3)] == [3, 6, 12]


def _row_time_limit() -> None:
    assert _task(time_limit=30).timeout == 30


def _row_soft_time_limit() -> None:
    assert _task(soft_time_limit=20).flow.soft_timeout == 20


def _row_acks_late() -> None:
    # True is what cloudq always does; False is refused
    assert _task(acks_late=True).name == "habits.mapped"
    with pytest.raises(TaskRegistrationError, match="acknowledges a message after its task ends"):
        _task(acks_late=False)


def _row_django_celery_settings() -> None:
    settings = from_celery_settings(
        {
            "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
            "CELERY_RESULT_BACKEND": "redis://127.0.0.1:6379/1",
            "CELERY_RESULT_EXPIRES": dt.timedelta(hours=2),
            "CELERY_TASK_DEFAULT_QUEUE": "jobs",
            "CELERY_WORKER_CONCURRENCY": 8,
            "DEBUG": True,
        }
    )
    assert settings == {
        "broker": "redis://127.0.0.1:6379/0",
        "celery_result_backend": "redis://127.0.0.1:6379/1",
        "result_ttl": 7200,
        "default_queue": "jobs",
        "celery_queues": ("jobs",),
    }
    app = CloudQ("habits-django", **settings)
    assert app.physical_queue_name("jobs") == "jobs"
    with pytest.raises(ConfigurationError, match="CELERY_TASK_SERIALIZER = 'json'"):
        from_celery_settings({"CELERY_TASK_SERIALIZER": "yaml"})


def _row_beat_schedule() -> None:
    # each beat_schedule entry is one app.add_periodic call
    app = memory_app()

    @app.task(name="habits.report")
    def report(kind: str) -> str:
        return kind

    beat_schedule = {"nightly": {"task": "habits.report", "schedule": dt.timedelta(hours=1), "args": ["x"]}}
    for name, entry in beat_schedule.items():
        app.add_periodic(app.tasks[entry["task"]], entry["schedule"], args=entry["args"], name=name)
    assert app.periodic_tasks["nightly"].args == ["x"]


def _row_priority() -> None:
    # Celery's integer priority picks a lane: 5 and above the high lane, below it the queue
    app = memory_app(priority_queues=("default",))

    @app.task(name="habits.urgent")
    def urgent() -> None: ...

    urgent.apply_async(priority=9)
    urgent.apply_async(priority=0)
    app.send_task("habits.urgent", priority=5)
    high = app.transport.receive("default-high", 10, wait_seconds=0)
    default = app.transport.receive("default", 10, wait_seconds=0)
    assert (len(high), len(default)) == (2, 1)


MAPPED_ROWS = {
    "default_retry_delay": _row_default_retry_delay,
    "retry_backoff=N": _row_retry_backoff_seconds,
    "time_limit": _row_time_limit,
    "soft_time_limit": _row_soft_time_limit,
    "acks_late": _row_acks_late,
    "CELERY_ settings in Django": _row_django_celery_settings,
    "beat_schedule": _row_beat_schedule,
    "priority": _row_priority,
}


@pytest.mark.parametrize("row", sorted(MAPPED_ROWS))
def test_each_mapped_row_of_the_option_table_does_what_it_says(row: str) -> None:
    MAPPED_ROWS[row]()


def test_the_option_table_marks_as_mapped_exactly_the_rows_tested_here() -> None:
    section = (Path(__file__).parents[2] / "docs" / "guides" / "celery.md").read_text()
    mapped = {line.split("|")[1].strip().strip("`") for line in section.splitlines() if "| mapped" in line}
    assert mapped == set(MAPPED_ROWS)


@pytest.mark.parametrize(("option", "message"), [("serializer", "JSON only"), ("routing_key", "use queue=")])
def test_a_refused_celery_task_option_says_what_to_do(option: str, message: str) -> None:
    with pytest.raises(TaskRegistrationError, match=message):
        _task(**{option: "x"})


def test_a_celery_result_backend_celery_cannot_be_written_is_refused_at_once() -> None:
    with pytest.raises(ConfigurationError, match="redis://… or dynamodb://<table>"):
        memory_app(celery_result_backend="rpc://")
