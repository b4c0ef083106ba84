"""Moving from Celery (issue 25), with real Celery 5 peers: a Celery producer's messages run on
cloudq over Redis (kombu's lists, bridged) and SQS on the emulator (a worker process), and the
producer's own ``AsyncResult.get()`` reads what cloudq ran (``celery_result_backend``)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
from celery import Celery

from cloudq import CloudQ, State
from cloudq.testing import drain
from tests.e2e.conftest import LambdaFactory
from tests.tasks import make_app

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def celery_queue() -> Iterator[str]:
    """A Celery queue name of its own; its Redis keys (kombu's and cloudq's) are deleted after.
    Celery's result keys stay (they expire in a day): another test process may be reading its own."""
    name = f"celery-{uuid.uuid4().hex[:8]}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    patterns = (f"{name}*", f"_kombu.binding.{name}")
    keys = [key for pattern in patterns for key in client.scan_iter(match=pattern)]
    if keys:
        client.delete(*keys)


def redis_producer(queue: str) -> Celery:
    celery = Celery("proj", broker=REDIS_URL, backend=REDIS_URL)
    celery.conf.update(task_default_queue=queue, task_serializer="json")
    return celery


def redis_cloudq(queue: str, **settings: Any) -> CloudQ:
    name = f"e{uuid.uuid4().hex[:6]}"
    return make_app(name, broker=REDIS_URL, backend="memory://", celery_queues=(queue,), **settings)


@contextmanager
def celery_worker(queue: str, tmp_path: Path, concurrency: int = 4) -> Iterator[subprocess.Popen[bytes]]:
    """``celery -A tests.celery_app worker -Q <queue>`` (a real Celery 5 worker process, on
    Redis), stopped (warm shutdown, then kill) at the end."""
    command = [sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker", "-Q", queue]
    command += ["--pool", "threads", "-c", str(concurrency), "--without-heartbeat", "--without-gossip"]
    command += ["--without-mingle", "-l", "warning", "-n", f"{queue}@%h"]
    with open(tmp_path / f"celery-{queue}.log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                # A warm shutdown stores the results of the tasks it finishes: a kill would lose
                # them, so it gets time enough on a loaded machine.
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise AssertionError(
                    f"the Celery worker of {queue} did not stop within 60 s of SIGTERM"
                ) from None


def sqs_producer(queue: str) -> Celery:
    """A Celery producer on the emulator's SQS (its queue predefined, as a team has it on
    AWS), results in Redis."""
    url = boto3.client("sqs").get_queue_url(QueueName=queue)["QueueUrl"]
    options = {"predefined_queues": {queue: {"url": url}}}
    celery = Celery("proj", broker="sqs://", backend=REDIS_URL, broker_transport_options=options)
    celery.conf.update(task_default_queue=queue, task_serializer="json")
    return celery


def waiting_get(result: Any) -> tuple[threading.Thread, list[Any]]:
    """Celery's ``result.get()`` started in a thread, returned once it waits: subscribed to
    the channel Celery's Redis backend publishes the result on."""
    got: list[Any] = []
    thread = threading.Thread(target=lambda: got.append(result.get(timeout=30)), daemon=True)
    thread.start()
    client = redis.Redis.from_url(REDIS_URL)
    deadline = time.monotonic() + 10
    while client.pubsub_numsub(f"celery-task-meta-{result.id}")[0][1] == 0:
        assert time.monotonic() < deadline, "Celery's .get() never subscribed to its result"
        time.sleep(0.02)
    return thread, got


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


def test_celerys_get_waiting_on_redis_returns_what_cloudq_ran(celery_queue: str) -> None:
    # Given a Celery producer (results in Redis), and a cloudq app bridging its queue that
    # names Celery's result backend
    producer = redis_producer(celery_queue)
    app = redis_cloudq(celery_queue, celery_result_backend=REDIS_URL)
    sent = producer.send_task("proj.tasks.add", args=(20, 22))
    failed = producer.send_task("proj.tasks.fails", args=("no stock",))
    # When the producer's .get() already waits, and cloudq then runs the tasks
    thread, got = waiting_get(sent)
    drain(app, [celery_queue], raise_failures=False)
    thread.join(30)
    # Then the waiting .get() returned the value, and a failure raises as Celery raises it
    assert got == [42]
    with pytest.raises(ValueError, match="no stock"):
        failed.get(timeout=5)
    assert failed.state == "FAILURE"
    producer.close()


def test_celerys_get_waiting_on_sqs_returns_what_cloudq_ran(
    e2e_env: dict[str, str], celery_queue: str
) -> None:
    # Given a Celery producer on the emulator's SQS (results in Redis), its queue served by a
    # cloudq app without a result backend of its own
    sqs = boto3.client("sqs")
    for name in (celery_queue, f"{celery_queue}-dlq"):
        sqs.create_queue(QueueName=name)
    producer = sqs_producer(celery_queue)
    app = make_app(
        e2e_env["CLOUDQ_TEST_APP"],
        backend=None,
        celery_queues=(celery_queue,),
        celery_result_backend=REDIS_URL,
    )
    sent = producer.send_task("proj.tasks.add", args=(2, 40))
    # When the producer's .get() already waits, and cloudq then runs the queue
    thread, got = waiting_get(sent)
    drain(app, [celery_queue])
    thread.join(30)
    # Then the waiting .get() returned what cloudq ran
    assert got == [42]
    producer.close()


def test_a_celery_delay_runs_through_the_lambda_handler_on_the_emulators_trigger(
    lambda_app: LambdaFactory, monkeypatch: pytest.MonkeyPatch, celery_queue: str
) -> None:
    # Given the app's Lambda worker deployed on the emulator for a Celery queue (the function
    # gets the deploying environment's CLOUDQ_* settings), and a Celery producer on its SQS
    monkeypatch.setenv("CLOUDQ_CELERY_QUEUES", celery_queue)
    monkeypatch.setenv("CLOUDQ_CELERY_RESULT_BACKEND", REDIS_URL)
    lambda_app(queues=celery_queue)
    producer = sqs_producer(celery_queue)
    # When the producer sends a task
    sent = producer.send_task("proj.tasks.add", args=(40, 2))
    # Then the trigger ran it through the handler, and Celery's .get() reads its value
    assert sent.get(timeout=30) == 42
    producer.close()
