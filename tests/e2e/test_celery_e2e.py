"""Moving from Celery (issue 25), with real Celery 5 peers: a Celery producer's messages run on
cloudq over Redis (kombu's lists, bridged) and SQS on the emulator (a worker process)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from celery import Celery

from cloudq import CloudQ, State
from cloudq.testing import drain
from tests.tasks import make_app

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def celery_queue() -> Iterator[str]:
    """A Celery queue name of its own; its Redis keys (kombu's and cloudq's) are deleted after."""
    name = f"celery-{uuid.uuid4().hex[:8]}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    patterns = (f"{name}*", f"_kombu.binding.{name}")
    keys = [key for pattern in patterns for key in client.scan_iter(match=pattern)]
    if keys:
        client.delete(*keys)


def redis_producer(queue: str) -> Celery:
    celery = Celery("proj", broker=REDIS_URL)
    celery.conf.update(task_default_queue=queue, task_serializer="json")
    return celery


def redis_cloudq(queue: str) -> CloudQ:
    return make_app(f"e{uuid.uuid4().hex[:6]}", broker=REDIS_URL, backend="memory://", celery_queues=(queue,))


def test_a_celery_delay_on_redis_runs_on_cloudq(celery_queue: str) -> None:
    # Given a Celery producer on Redis, and a cloudq app bridging its queue
    producer = redis_producer(celery_queue)
    app = redis_cloudq(celery_queue)
    # When the producer sends three tasks and cloudq drains the queue
    sent = [producer.send_task("proj.tasks.add", args=(i, i)) for i in range(3)]
    drain(app, [celery_queue])
    # Then each ran once, under Celery's id
    assert [app.AsyncResult(s.id).get(timeout=1) for s in sent] == [0, 2, 4]
    producer.close()


def test_a_bad_celery_message_on_redis_goes_to_the_dead_letter_queue(celery_queue: str) -> None:
    # Given a Celery message in another serializer than JSON (YAML) on kombu's list
    producer = redis_producer(celery_queue)
    producer.conf.update(task_serializer="yaml", accept_content=["yaml"])
    sent = producer.send_task("proj.tasks.add", args=(1, 2))
    app = redis_cloudq(celery_queue)
    # When cloudq drains the queue
    drain(app, [celery_queue], raise_failures=False)
    # Then it is in the queue's dead-letter queue, with the setting to change
    from cloudq.ops.dead_letters import list_dead_letters

    [letter] = list_dead_letters(app, celery_queue)
    assert letter.task_id == sent.id and "task_serializer='json'" in letter.reason
    assert app.AsyncResult(sent.id).state is State.PENDING
    producer.close()
