"""The long-polling worker on the in-process broker: pool, batched acks, heartbeat, stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from cloudq import CloudQ
from cloudq.core.clock import ManualClock
from cloudq.worker import Worker
from tests.processes import wait_until
from tests.tasks import make_app


@contextmanager
def running(worker: Worker) -> Iterator[Worker]:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(timeout=10)
        assert not thread.is_alive(), "worker did not stop"


def test_a_worker_runs_many_tasks_concurrently(app: CloudQ) -> None:
    # Given 8 tasks of 0.3 s and a pool of 8
    results = [app.tasks["sleep"].delay(0.3, str(i)) for i in range(8)]
    started = time.monotonic()
    # When a worker drains them
    with running(Worker(app, concurrency=8, wait_seconds=0.1)):
        values = [result.get(timeout=5) for result in results]
    # Then they ran side by side, not one after another (8 × 0.3 s = 2.4 s)
    assert values == [str(i) for i in range(8)]
    assert time.monotonic() - started < 2.0
    assert app.transport.stats("default") == type(app.transport.stats("default"))(0, 0, 0)


def test_the_worker_fetches_no_more_than_it_can_start(app: CloudQ) -> None:
    # Given 6 slow tasks and a worker with 2 slots
    for i in range(6):
        app.tasks["sleep"].delay(1.0, str(i))
    with running(Worker(app, concurrency=2, wait_seconds=0.1)) as worker:
        # Once it has started 2 (on a loaded machine that can take longer than a fixed wait),
        # and a little after, while they still run
        assert wait_until(lambda: worker.stats.received >= 2, timeout=5, interval=0.01)
        time.sleep(0.2)
        # Then only 2 are in flight; the other 4 stay visible for other workers
        stats = app.transport.stats("default")
        assert (stats.in_flight, stats.visible) == (2, 4)
        assert worker.stats.received == 2


def test_without_heartbeat_the_message_would_reappear() -> None:
    # The control for the test above: a received, unextended message comes back after 1 s.
    clock = ManualClock()
    app = make_app("unit", broker="memory://", backend="memory://", clock=clock)
    app.tasks["noop"].delay()
    [first] = app.transport.receive("default", 1, wait_seconds=0, visibility_timeout=1)
    clock.advance(1.2)
    [again] = app.transport.receive("default", 1, wait_seconds=0)
    assert (first.message_id, again.receive_count) == (again.message_id, 2)


def test_stop_lets_running_tasks_finish(app: CloudQ) -> None:
    result = app.tasks["sleep"].delay(1.0, "finishing")
    worker = Worker(app, concurrency=1, wait_seconds=0.1, grace=5)
    with running(worker):
        time.sleep(0.3)  # started
    assert result.get(timeout=0.1) == "finishing"
    assert app.transport.stats("default").in_flight == 0


def test_stop_waits_for_deletes_already_on_their_way(app: CloudQ, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a broker that takes 1 s to confirm a delete
    delete = app.transport.ack

    def slow_delete(queue: str, receipt_handles: list[str]) -> None:
        time.sleep(1.0)
        delete(queue, receipt_handles)

    monkeypatch.setattr(app.transport, "ack", slow_delete)
    results = [app.tasks["sleep"].delay(0.0, str(i)) for i in range(3)]
    worker = Worker(app, concurrency=2, wait_seconds=0.1, grace=5)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    # When the tasks are done (their deletes under way) and the worker stops
    assert [result.get(timeout=5) for result in results] == ["0", "1", "2"]
    time.sleep(0.1)
    worker.stop()
    thread.join(timeout=10)
    # Then run() returns only once every delete reached the broker: none comes back to run again
    assert not thread.is_alive()
    assert app.transport.stats("default").in_flight == 0
    assert worker.stats.acked == 3


def poll_opened(app: CloudQ, monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set when the worker's first receive (its long poll) has begun: a test that stops an
    idle worker waits for it, not for a fixed time a loaded machine may not keep."""
    opened = threading.Event()
    receive = app.transport.receive

    def receiving(*args: object, **kwargs: object) -> object:
        opened.set()
        return receive(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(app.transport, "receive", receiving)
    return opened


def test_stop_waits_for_the_poll_in_flight_and_hands_back_what_it_receives(
    app: CloudQ, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an idle worker in a 3 s long poll
    worker = Worker(app, ["default"], concurrency=1, wait_seconds=3)
    thread = threading.Thread(target=worker.run, daemon=True)
    opened = poll_opened(app, monkeypatch)
    thread.start()
    assert opened.wait(5)
    # When it is stopped, and a task is sent 1.2 s later, while that poll is still open
    worker.stop()
    time.sleep(1.2)
    still_stopping = thread.is_alive()
    app.tasks["noop"].delay()
    sent_at = time.monotonic()
    thread.join(timeout=5)
    # Then the stop waited for the poll (an exited process's poll, on SQS, would keep the
    # message hidden for the visibility timeout) and handed the message back at once
    assert still_stopping, "the stop abandoned the poll in flight"
    assert not thread.is_alive()
    assert time.monotonic() - sent_at < 0.5, "the stop waited out the rest of the poll"
    assert worker.stats.handed_back == 1
    stats = app.transport.stats("default")
    assert (stats.visible, stats.in_flight) == (1, 0)


def test_the_end_of_the_grace_abandons_a_poll_and_says_how_long_its_messages_may_wait(
    app: CloudQ, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a worker whose grace (0.2 s) is shorter than its long-poll wait (3 s)
    worker = Worker(app, ["default"], concurrency=1, wait_seconds=3, grace=0.2, visibility_timeout=30)
    thread = threading.Thread(target=worker.run, daemon=True)
    opened = poll_opened(app, monkeypatch)
    with caplog.at_level("WARNING", logger="cloudq.worker"):
        thread.start()
        assert opened.wait(5)
        # When it is stopped while idle
        stopped_at = time.monotonic()
        worker.stop()
        thread.join(timeout=5)
        elapsed = time.monotonic() - stopped_at
    # Then it warned at start, and abandoned the poll at the grace's end, saying how long a
    # message that poll receives may wait
    assert elapsed < 1.0
    assert "grace 0.2 s is shorter than the long-poll wait 3 s" in caplog.text
    assert (
        "grace of 0.2 s over: 1 long poll(s) in flight abandoned: a message SQS hands one waits out "
        "the visibility timeout (30 s)"
    ) in caplog.text


def test_a_broken_message_does_not_stop_the_worker(app: CloudQ) -> None:
    from cloudq.transports import OutgoingMessage

    app.transport.send("default", [OutgoingMessage("garbage{")])
    result = app.tasks["add"].delay(2, 2)
    with running(Worker(app, concurrency=2, wait_seconds=0.1)) as worker:
        assert result.get(timeout=5) == 4
    assert worker.stats.dead_lettered == 1
    assert app.transport.stats("default-dlq").visible == 1


def test_a_long_poll_on_an_idle_queue_does_not_keep_another_queues_tasks_waiting(app: CloudQ) -> None:
    # Given a worker on an idle queue (polled first) and a busy one, long polls of 5 s, 2 slots
    results = [app.tasks["sleep"].delay(0.2, str(i)) for i in range(4)]
    # (grace 0: the stop abandons the idle poll instead of waiting it out)
    worker = Worker(app, ["orders.fifo", "default"], concurrency=2, wait_seconds=5, grace=0)
    started = time.monotonic()
    with running(worker):
        # Then the busy queue's tasks run at once, not after the idle queue's poll ends
        assert [result.get(timeout=10) for result in results] == ["0", "1", "2", "3"]
        elapsed = time.monotonic() - started
    assert elapsed < 2.5, f"{elapsed:.1f} s: the idle queue's receiver held the free slots"


def test_worker_options_are_one_object_filled_from_the_settings() -> None:
    from cloudq.options import WorkerOptions
    from tests.tasks import make_app

    # Given an app whose settings set the long-poll wait and the visibility timeout
    app = make_app("unit", broker="memory://", backend="memory://", wait_seconds=3, visibility_timeout=45)
    # When a worker is made from keywords, or from the object they build
    by_keywords = Worker(app, ["default"], concurrency=3)
    by_object = Worker(app, options=WorkerOptions(("default",), concurrency=3))
    # Then both run with the settings where the options leave them unset, the options elsewhere
    for worker in (by_keywords, by_object):
        assert (worker.queues, worker.concurrency, worker.wait_seconds, worker.visibility_timeout) == (
            ["default"],
            3,
            3,
            45,
        )
    assert Worker(app, wait_seconds=0, visibility_timeout=60).wait_seconds == 0
    assert Worker(app, visibility_timeout=60).visibility_timeout == 60


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"concurrency": 0}, "concurrency must be at least 1"),
        ({"concurrency": 2.5}, "concurrency must be at least 1, not 2.5"),
        ({"visibility_timeout": -5}, "visibility_timeout must be whole seconds"),
        ({"wait_seconds": 21}, "wait_seconds must be between 0 and 20"),
        ({"grace": -1}, "grace must be 0 seconds or more"),
        ({"queues": "default"}, "queues must be a list of queue names"),
    ],
)
def test_bad_worker_options_are_one_clear_error(
    app: CloudQ, options: dict[str, object], message: str
) -> None:
    from cloudq import ConfigurationError
    from cloudq.options import WorkerOptions

    with pytest.raises(ConfigurationError, match=message):
        Worker(app, options=WorkerOptions(**options))  # type: ignore[arg-type]


def test_a_visibility_timeout_past_the_broker_limit_is_refused(app: CloudQ) -> None:
    from cloudq import ConfigurationError

    ceiling = app.transport.max_visibility_seconds
    with pytest.raises(ConfigurationError, match=f"past the broker's limit of {ceiling} s"):
        Worker(app, visibility_timeout=ceiling + 1)
