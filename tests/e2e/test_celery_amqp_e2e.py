"""Moving from Celery on RabbitMQ (issue 25): a real Celery 5 producer's AMQP messages (its
headers and properties, the body as JSON) run on cloudq, Celery's ``AsyncResult.get()`` reads
what cloudq ran, and what cloudq sends to a Celery queue is Celery's AMQP form."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

from cloudq import CloudQ
from cloudq.ops.dead_letters import list_dead_letters
from cloudq.testing import drain
from tests.conformance.conftest import AMQP_URL, REDIS_URL, amqp_transport_or_fail
from tests.e2e.test_celery_e2e import waiting_get
from tests.tasks import make_app


@pytest.fixture
def celery_queue() -> Iterator[str]:
    """A Celery queue name of its own on RabbitMQ; it, its dead-letter queue and Celery's
    exchange of that name are deleted after. Fails (never skips) when RabbitMQ is down."""
    amqp_transport_or_fail("celery-check-").close()
    name = f"celery-{uuid.uuid4().hex[:8]}"
    yield name
    import amqp

    connection = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest", connect_timeout=3)
    connection.connect()
    channel = connection.channel()
    for queue in (name, f"{name}-dlq"):
        channel.queue_delete(queue)
    channel.exchange_delete(name)
    connection.close()
    # Celery's result keys stay (they expire in a day): another test process may be reading its own.


def producer(queue: str, **conf: Any) -> Celery:
    celery = Celery("proj", broker=AMQP_URL, backend=REDIS_URL)
    celery.conf.update({"task_default_queue": queue, "task_serializer": "json", **conf})
    return celery


def cloudq_app(queue: str) -> CloudQ:
    name = f"e{uuid.uuid4().hex[:6]}"
    return make_app(
        name, broker=AMQP_URL, backend=None, celery_queues=(queue,), celery_result_backend=REDIS_URL
    )


def test_a_celery_delay_on_rabbitmq_runs_on_cloudq_and_celerys_get_returns_it(celery_queue: str) -> None:
    # Given a Celery producer on RabbitMQ (results in Redis), and a cloudq app serving its queue
    celery = producer(celery_queue)
    app = cloudq_app(celery_queue)
    sent = celery.send_task("proj.tasks.add", args=(30, 12), root_id="root-1")
    lineage = celery.send_task("proj.tasks.lineage")
    # When the producer's .get() already waits, and cloudq runs the queue
    thread, got = waiting_get(sent)
    drain(app, [celery_queue])
    thread.join(30)
    # Then the waiting .get() returned the value, and Celery's headers reached the task
    assert got == [42]
    assert lineage.get(timeout=5) == [lineage.id, lineage.id, None, 1]
    app.transport.close()
    celery.close()


def test_a_celery_message_cloudq_cannot_run_on_rabbitmq_is_a_dead_letter(celery_queue: str) -> None:
    # Given a Celery message in another serializer than JSON (YAML), on RabbitMQ
    celery = producer(celery_queue, task_serializer="yaml", accept_content=["yaml"])
    sent = celery.send_task("proj.tasks.add", args=(1, 2))
    app = cloudq_app(celery_queue)
    # When cloudq runs the queue
    drain(app, [celery_queue], raise_failures=False)
    # Then it is in the queue's dead-letter queue with the setting to change
    [letter] = list_dead_letters(app, celery_queue)
    assert letter.task_id == sent.id and "task_serializer='json'" in letter.reason
    app.transport.close()
    celery.close()


def test_cloudq_sends_celerys_amqp_form_to_a_celery_queue(celery_queue: str) -> None:
    # Given a cloudq app serving a Celery queue on RabbitMQ
    app = cloudq_app(celery_queue)
    # When it sends a task there
    sent = app.send_task("proj.tasks.add", args=(5, 6), queue=celery_queue, protocol="celery")
    app.transport.close()
    # Then the queue holds Celery's AMQP form: its headers, JSON content, [args, kwargs, embed]
    import amqp

    connection = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest", connect_timeout=3)
    connection.connect()
    raw = connection.channel().basic_get(celery_queue, no_ack=True)
    connection.close()
    assert raw is not None
    headers = raw.properties["application_headers"]
    assert (headers["task"], headers["id"]) == ("proj.tasks.add", sent.id)
    assert (raw.properties["content_type"], raw.properties["content_encoding"]) == (
        "application/json",
        "utf-8",
    )
    assert json.loads(raw.body)[:2] == [[5, 6], {}]
