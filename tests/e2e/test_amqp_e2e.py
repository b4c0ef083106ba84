"""Real ``cloudq worker`` processes on the real RabbitMQ (broker) with results in Redis."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid

import pytest

from cloudq import CloudQ, TaskError
from cloudq.transports.base import DeadLetterNote
from tests.conformance.conftest import AMQP_URL, amqp_transport_or_fail
from tests.e2e.conftest import WorkerFactory, delete_amqp_app_queues
from tests.e2e.conftest import amqp_channel as _channel
from tests.processes import side_effects, wait_for_side_effect


def _dead_letters(app: CloudQ, queue: str = "default", wait: float = 10) -> list[tuple[str, str]]:
    """(body, reason) of the messages in a queue's dead-letter queue, read with plain amqp."""
    channel = _channel()
    found: list[tuple[str, str]] = []
    deadline = time.monotonic() + wait
    while not found and time.monotonic() < deadline:
        while (raw := channel.basic_get(app.physical_queue_name(f"{queue}-dlq"))) is not None:
            headers = {k: str(v) for k, v in (raw.properties.get("application_headers") or {}).items()}
            note = DeadLetterNote.from_attributes(headers)
            found.append((raw.body, note.reason if note else "(no note)"))
        time.sleep(0.2)
    channel.connection.close()
    return found


def test_delay_to_get_through_a_worker_process(amqp_app: CloudQ, start_worker: WorkerFactory) -> None:
    # Given a worker process on RabbitMQ
    start_worker("-c", "4")
    # When a web backend sends tasks, one of them with a countdown (a delay queue)
    results = [amqp_app.tasks["add"].delay(i, i) for i in range(20)]
    later = amqp_app.tasks["add"].apply_async((20, 22), countdown=2)
    sent_at = time.monotonic()
    # Then every result arrives in Redis, the delayed one after its countdown
    assert [result.get(timeout=30) for result in results] == [2 * i for i in range(20)]
    assert later.get(timeout=30) == 42
    assert time.monotonic() - sent_at >= 1.5


def test_a_killed_workers_task_runs_again(
    amqp_app: CloudQ, start_worker: WorkerFactory, e2e_env: dict[str, str]
) -> None:
    # Given a worker running a 4 s task
    victim = start_worker()
    result = amqp_app.tasks["sleep"].delay(4.0, "survivor")
    wait_for_side_effect(e2e_env, "sleep")
    # When the worker is killed mid-task
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    start_worker()
    # Then RabbitMQ delivers the unacked message again and the task completes
    assert result.get(timeout=60) == "survivor"
    assert side_effects(e2e_env, "sleep") == ["survivor", "survivor"]
    assert amqp_app.AsyncResult(result.id).record().attempts == 2  # type: ignore[union-attr]


def test_garbage_goes_to_the_dead_letter_queue_with_its_reason(
    amqp_app: CloudQ, start_worker: WorkerFactory
) -> None:
    import amqp

    # Given a garbage body published with plain amqp
    amqp_app.transport.check_queues(["default"])
    channel = _channel()
    channel.basic_publish(amqp.Message("this is not a task {"), "", amqp_app.physical_queue_name("default"))
    channel.connection.close()
    start_worker()
    # When a valid task follows
    result = amqp_app.tasks["add"].delay(40, 2)
    # Then the task runs, and the garbage is in the dead-letter queue with a reason
    assert result.get(timeout=30) == 42
    [(body, reason)] = _dead_letters(amqp_app)
    assert body == "this is not a task {"
    assert reason.startswith("DecodeError")


def test_retries_are_attempts_and_the_last_goes_to_the_dead_letter_queue(
    amqp_app: CloudQ, start_worker: WorkerFactory, e2e_env: dict[str, str]
) -> None:
    # Given a worker, when a task fails every time (max_retries=2, no backoff delay)
    start_worker()
    result = amqp_app.tasks["always_fails"].delay("amqp")
    # Then it ran 3 times (each retry re-published, never spending the delivery limit)
    with pytest.raises(TaskError) as raised:
        result.get(timeout=60)
    assert raised.value.error_type == "FlakyError"
    assert side_effects(e2e_env, "always_fails") == ["amqp"] * 3
    [(_, reason)] = _dead_letters(amqp_app)
    assert "gave up after 3 attempts" in reason


def test_an_unreachable_rabbitmq_is_one_line(e2e_env: dict[str, str]) -> None:
    env = {**e2e_env, "CLOUDQ_BROKER": "amqp://guest:guest@127.0.0.1:1//"}
    done = subprocess.run(
        [sys.executable, "-m", "cloudq", "worker", "tests.tasks:app"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "RabbitMQ at 127.0.0.1:1" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_demo_runs_on_rabbitmq() -> None:
    # Given RabbitMQ up (the fixture of the other tests checks it the same way)
    amqp_transport_or_fail("demo-check-").close()
    # When the demo runs with RabbitMQ as its broker
    done = subprocess.run(
        [sys.executable, "-m", "cloudq", "demo", "--broker", AMQP_URL, "-n", "30", "-c", "4"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    # Then every result is checked
    assert done.returncode == 0, done.stdout + done.stderr
    assert "results checked" in done.stdout and "30/30" in done.stdout


def test_a_bad_amqp_url_in_the_demo_is_one_line_and_exit_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cloudq", "demo", "--broker", "amqp://127.0.0.1:port//", "-n", "1"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "bad port" in done.stderr and "Traceback" not in done.stderr


def test_hand_backs_never_spend_the_delivery_limit() -> None:
    from cloudq.transports.base import OutgoingMessage
    from tests.conformance.conftest import delete_amqp_queues

    # Given a queue whose broker dead-letters after 2 redeliveries
    prefix = f"c{uuid.uuid4().hex[:10]}-"
    transport = amqp_transport_or_fail(prefix, delivery_limit=2)
    try:
        transport.send("work", [OutgoingMessage("handed back")])
        # When the message is handed back 5 times (a stopping worker, no free slot)
        counts = []
        for _ in range(5):
            [got] = transport.receive("work", 1, wait_seconds=5)
            counts.append(got.receive_count)
            transport.change_visibility("work", got.receipt_handle, 0)
        # Then it is still in its queue, not dead-lettered, and every receive was counted
        [got] = transport.receive("work", 1, wait_seconds=5)
        assert (got.body, got.receive_count) == ("handed back", 6)
        assert counts == [1, 2, 3, 4, 5]
        assert transport.receive("work-dlq", 1, wait_seconds=0.5) == []
    finally:
        transport.close()
        delete_amqp_queues(prefix)


def test_a_worker_warns_at_start_about_a_task_longer_than_the_consumer_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from cloudq.worker import Worker

    # Given an app on RabbitMQ with a task allowed to run 2 hours (past the 30 min timeout)
    name = f"c{uuid.uuid4().hex[:10]}"
    amqp_transport_or_fail(f"{name}-").close()
    app = CloudQ(name, broker=AMQP_URL, backend=None)

    @app.task(name="report", timeout=7200)
    def report() -> None: ...

    # When a worker starts
    worker = Worker(app, ["default"], concurrency=1, wait_seconds=0.5)
    with caplog.at_level("WARNING", logger="cloudq.worker"):
        worker.start()
        worker.stop()
    app.transport.close()
    delete_amqp_app_queues(name)
    # Then it says that the task can outlive the broker's hold on its message
    [warning] = [record.getMessage() for record in caplog.records if "report" in record.getMessage()]
    assert "past the broker's 1800 s limit" in warning and "RabbitMQ at 127.0.0.1:5672" in warning
