"""Celery's habits on cloudq (issue 25): the send options a Celery user passes, and the rows
of the README's option table (Moving from Celery) marked "mapped", each checked here."""

from __future__ import annotations

import pytest

from cloudq import CloudQ
from cloudq.core.errors import ArgumentError, ConfigurationError


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


def test_celerys_priority_is_refused_with_a_clear_message() -> None:
    app = memory_app()

    @app.task(name="proj.tasks.add")
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(
        ConfigurationError, match="priority=5: Celery's message priority is not supported yet"
    ):
        add.apply_async((1, 2), priority=5)
    with pytest.raises(ConfigurationError, match="send urgent tasks to a queue of their own"):
        app.send_task("proj.tasks.add", args=(1, 2), priority=0)
