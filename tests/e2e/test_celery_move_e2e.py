"""A Celery app moves to cloudq one queue at a time (issue 25), on Redis: queue A is served by
a real Celery worker while queue B is served by a cloudq worker, at the same time, producers
on both sides (Celery's ``send_task`` and cloudq's ``send_task(protocol="celery")``); then A
moves as well (its Celery worker stops mid-queue, a cloudq worker takes the rest). Every task
counts its runs in Redis (``runs:<tag>``): each ran exactly once, and Celery's ``.get()``
reads every result, whichever side ran it.

``CLOUDQ_CELERY_MOVE=full`` (``make celery-move``) sends the issue's 200 tasks per queue; the
default run sends 40."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

from cloudq import CloudQ
from tests.e2e.conftest import WorkerFactory
from tests.e2e.test_celery_e2e import REDIS_URL, celery_worker
from tests.processes import wait_until
from tests.tasks import make_app

PER_QUEUE = 200 if os.environ.get("CLOUDQ_CELERY_MOVE", "").lower() == "full" else 40
#: Each task takes this long, so that A's Celery worker is stopped with tasks still queued.
TASK_SECONDS = 0.25


@pytest.fixture
def queues() -> Iterator[tuple[str, str]]:
    run = uuid.uuid4().hex[:8]
    pair = (f"move-a-{run}", f"move-b-{run}")
    yield pair
    client = redis.Redis.from_url(REDIS_URL)
    patterns = [f"{name}*" for name in pair] + [f"_kombu.binding.{name}" for name in pair]
    patterns += [f"runs:{run}-*"]
    keys = [key for pattern in patterns for key in client.scan_iter(match=pattern, count=1000)]
    if keys:
        client.delete(*keys)


def send(celery: Celery, app: CloudQ, queue: str, tags: list[str]) -> list[str]:
    """Half of ``tags`` sent by the Celery producer, half by cloudq in Celery's protocol; ids."""
    ids = []
    for index, tag in enumerate(tags):
        args = (tag, TASK_SECONDS)
        if index % 2:
            ids.append(app.send_task("proj.tasks.count_run", args=args, queue=queue, protocol="celery").id)
        else:
            ids.append(celery.send_task("proj.tasks.count_run", args=args, queue=queue).id)
    return ids


def runs(client: redis.Redis, tags: list[str]) -> list[int]:
    return [int(value or 0) for value in client.mget([f"runs:{tag}" for tag in tags])]


def test_a_celery_app_moves_queue_by_queue_with_nothing_lost_or_run_twice(
    queues: tuple[str, str], start_worker: WorkerFactory, e2e_env: dict[str, str], tmp_path: Path
) -> None:
    a, b = queues
    run = a.rsplit("-", 1)[1]
    client = redis.Redis.from_url(REDIS_URL)
    celery = Celery("proj", broker=REDIS_URL, backend=REDIS_URL)
    celery.conf.update(task_serializer="json")
    app = make_app(f"e{run}", broker=REDIS_URL, backend="memory://", celery_queues=queues)
    settings = {
        "CLOUDQ_BROKER": REDIS_URL,
        "CLOUDQ_BACKEND": REDIS_URL,
        "CLOUDQ_CELERY_QUEUES": f"{a},{b}",
        "CLOUDQ_CELERY_RESULT_BACKEND": REDIS_URL,
    }
    tags_a = [f"{run}-a{i}" for i in range(PER_QUEUE)]
    tags_b = [f"{run}-b{i}" for i in range(PER_QUEUE)]
    with celery_worker(a, tmp_path, concurrency=2):
        # Given queue A on a Celery worker and queue B on a cloudq worker, at the same time
        start_worker("-Q", b, "-c", "4", env=settings)
        ids = send(celery, app, a, tags_a) + send(celery, app, b, tags_b)
        # When B is done and A's Celery worker has run part of its queue, it stops
        assert wait_until(lambda: all(runs(client, tags_b)), timeout=60), "queue B not done"
        assert wait_until(lambda: sum(runs(client, tags_a)) >= PER_QUEUE // 4, timeout=60)
    left = PER_QUEUE - sum(runs(client, tags_a))
    # And A moves to cloudq as well
    start_worker("-Q", a, "-c", "4", env=settings)
    # Then every task of both queues ran exactly once
    assert wait_until(lambda: all(runs(client, tags_a)), timeout=60), "queue A not done after its move"
    assert runs(client, tags_a + tags_b) == [1] * (2 * PER_QUEUE)
    # And Celery's .get() reads each result, from whichever side ran it
    ran_by = [celery.AsyncResult(task_id).get(timeout=30) for task_id in ids]
    assert ran_by[PER_QUEUE:] == ["cloudq"] * PER_QUEUE
    assert ran_by[:PER_QUEUE].count("cloudq") == left > 0
    # (what cloudq sent in Celery's protocol, a Celery worker ran: odd tasks are cloudq's)
    assert "celery" in ran_by[1:PER_QUEUE:2]
    # (only this test's results go: another test process may be reading its own)
    client.delete(*[f"celery-task-meta-{task_id}" for task_id in ids])
    celery.close()
