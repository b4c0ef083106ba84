"""The worker's parts, driven by hand: no threads, no sleeps.

The ledger and the pace are plain objects; the heartbeat and the acker work on the in-process
broker with a manual clock.
"""

from __future__ import annotations

import threading

import pytest

from cloudq.core.clock import ManualClock
from cloudq.core.flow import LanePolicy
from cloudq.runtime.acker import Acker
from cloudq.runtime.heartbeat import Heartbeat
from cloudq.runtime.ledger import Ledger
from cloudq.runtime.receivers import LOOKAHEAD_SECONDS, Pace
from cloudq.transports.base import OutgoingMessage, ReceivedMessage
from cloudq.transports.memory import MemoryTransport


def received(n: int, queue: str = "default") -> ReceivedMessage:
    return ReceivedMessage(queue=queue, message_id=f"m{n}", receipt_handle=f"r{n}", body="{}")


NOT_STOPPING = threading.Event()


# -- the ledger ---------------------------------------------------------------------------


def test_a_message_is_queued_then_running_then_its_delete_waits_for_the_acker() -> None:
    # Given a ledger with one accepted message
    ledger = Ledger(batch_size=10)
    message = received(1)
    assert ledger.accept([message], at_most=10, timeout=0, stopping=NOT_STOPPING)
    assert ledger.next_run() == [message]
    # When a task thread starts it and it ends acknowledged
    running = ledger.start(message, now=5.0)
    assert running is not None and ledger.running_count() == 1 and ledger.held() == 1
    ledger.finish(message, acknowledged=True)
    # Then nothing is held, and its delete waits: no full batch yet, one partial one
    assert ledger.held() == 0
    assert ledger.take_full_acks() is None
    assert ledger.take_acks() == [("default", ["r1"])]
    assert ledger.take_acks() == []


def test_two_queues_messages_with_one_receipt_handle_are_held_apart() -> None:
    # Given a message of a queue and one of its high lane with the same receipt handle (Redis
    # numbers each queue's deliveries from 1), on a worker serving lanes
    ledger = Ledger(batch_size=10, lanes=LanePolicy())
    mine, lanes = received(1), received(1, queue="default-high")
    for message in (mine, lanes):
        assert ledger.accept([message], at_most=10, timeout=0, stopping=NOT_STOPPING)
    # When both run and end
    for message in (mine, lanes):
        assert ledger.start(message, now=0.0) is not None
    assert (ledger.held(), ledger.held(high=True), ledger.held(high=False)) == (2, 1, 1)
    for message in (mine, lanes):
        ledger.finish(message, acknowledged=True)
    # Then each was held and deleted on its own
    assert ledger.held() == 0
    assert sorted(ledger.take_acks()) == [("default", ["r1"]), ("default-high", ["r1"])]


def test_a_message_that_is_not_acknowledged_queues_no_delete() -> None:
    ledger = Ledger(batch_size=10)
    message = received(1)
    ledger.accept([message], at_most=10, timeout=0, stopping=NOT_STOPPING)
    ledger.start(message, now=0.0)
    ledger.finish(message, acknowledged=False)
    assert ledger.take_acks() == []


def test_deletes_come_out_in_full_batches_then_the_rest() -> None:
    # Given 23 acknowledged messages of one queue and batches of 10
    ledger = Ledger(batch_size=10)
    messages = [received(n) for n in range(23)]
    for message in messages:
        ledger.accept([message], at_most=100, timeout=0, stopping=NOT_STOPPING)
        ledger.start(message, now=0.0)
        ledger.finish(message, acknowledged=True)
    # Then two full batches come out one at a time, then the rest in one take
    first, second = ledger.take_full_acks(), ledger.take_full_acks()
    assert first is not None and second is not None
    assert [len(first[1]), len(second[1])] == [10, 10]
    assert ledger.take_full_acks() is None
    assert ledger.take_acks() == [("default", ["r20", "r21", "r22"])]


def test_whoever_takes_a_queued_message_owns_it() -> None:
    # Given a queued run that the stop takes back
    ledger = Ledger(batch_size=10)
    run = [received(1), received(2)]
    ledger.accept(run, at_most=10, timeout=0, stopping=NOT_STOPPING)
    assert sorted(m.message_id for m in ledger.take_queued()) == ["m1", "m2"]
    # Then the task thread that reaches it later cannot start it
    assert ledger.start(run[0], now=0.0) is None
    assert ledger.unqueue(run) == []


def test_a_full_ledger_refuses_at_once_with_no_wait() -> None:
    # Given one message held and room for at most one
    ledger = Ledger(batch_size=10)
    ledger.accept([received(1)], at_most=1, timeout=0, stopping=NOT_STOPPING)
    # Then a second run is refused (the receiver hands it back) and a room check fails
    assert not ledger.accept([received(2)], at_most=0, timeout=0, stopping=NOT_STOPPING)
    assert not ledger.wait_for_room(0, timeout=0, stopping=NOT_STOPPING)
    assert ledger.wait_for_room(1, timeout=0, stopping=NOT_STOPPING)


def test_a_closed_or_stopping_ledger_accepts_nothing() -> None:
    stopping = threading.Event()
    stopping.set()
    ledger = Ledger(batch_size=10)
    assert not ledger.accept([received(1)], at_most=10, timeout=0, stopping=stopping)
    ledger.close(task_threads=2)
    assert not ledger.accept([received(2)], at_most=10, timeout=0, stopping=NOT_STOPPING)
    # and each task thread is told to end
    assert [ledger.next_run(), ledger.next_run()] == [None, None]


def test_the_heartbeat_extends_running_and_queued_messages_but_not_an_overrun_task() -> None:
    # Given a running task with a 10 s timeout started at 0, one without, and a queued message
    ledger = Ledger(batch_size=10)
    timed, untimed, waiting = received(1), received(2), received(3, queue="emails")
    for message in (timed, untimed, waiting):
        ledger.accept([message], at_most=10, timeout=0, stopping=NOT_STOPPING)
    running = ledger.start(timed, now=0.0)
    assert running is not None
    running.timeout = 10.0
    ledger.start(untimed, now=0.0)
    # Then within the timeout all three are due; past it the timed one is not, and it counts
    # as overrun only past timeout + grace
    assert ledger.due_for_extension(now=9.0) == {"default": ["r1", "r2"], "emails": ["r3"]}
    assert ledger.due_for_extension(now=11.0) == {"default": ["r2"], "emails": ["r3"]}
    assert (ledger.overrun(now=11.0, grace=5), ledger.overrun(now=16.0, grace=5)) == (0, 1)


def test_an_unknown_stat_is_refused() -> None:
    with pytest.raises(ValueError, match="no worker stat"):
        Ledger(batch_size=10).count("recieved")


# -- the pace -----------------------------------------------------------------------------


def test_the_pace_reads_ahead_only_for_tasks_fast_enough() -> None:
    # Given a pool of 8 and a look-ahead of at most 40
    pace = Pace(concurrency=8, limit=40)
    # Then before any task ends it reads nothing ahead
    assert pace.lookahead == 0
    # When tasks take 1 s: 8 threads finish 2 within the look-ahead window
    pace.task_done(1.0)
    assert pace.lookahead == int(8 * LOOKAHEAD_SECONDS / 1.0) == 2
    # When tasks take 5 s: none
    slow = Pace(concurrency=8, limit=40)
    slow.task_done(5.0)
    assert slow.lookahead == 0
    # When tasks take 1 ms: as many as the limit allows
    fast = Pace(concurrency=8, limit=40)
    fast.task_done(0.001)
    assert fast.lookahead == 40


def test_the_pace_follows_a_moving_average_not_the_last_task() -> None:
    pace = Pace(concurrency=8, limit=40)
    pace.task_done(1.0)
    pace.task_done(0.001)  # one fast task moves the average a tenth of the way
    assert pace.lookahead == int(8 * LOOKAHEAD_SECONDS / (1.0 + 0.1 * (0.001 - 1.0)))


# -- heartbeat and acker on the in-process broker ----------------------------------------


def one_received(transport: MemoryTransport, visibility_timeout: int) -> ReceivedMessage:
    transport.send("default", [OutgoingMessage("{}")])
    [message] = transport.receive("default", 1, 0, visibility_timeout)
    return message


def test_a_beat_keeps_a_held_message_hidden_past_its_visibility_timeout() -> None:
    # Given a message received with a 2 s visibility timeout and held by the ledger
    clock = ManualClock()
    transport = MemoryTransport(clock=clock)
    message = one_received(transport, visibility_timeout=2)
    ledger = Ledger(transport.batch_size)
    ledger.accept([message], at_most=10, timeout=0, stopping=NOT_STOPPING)
    heartbeat = Heartbeat(transport, ledger, visibility_timeout=2)
    # When the heartbeat beats at 1.5 s and the clock reaches 3 s
    clock.advance(1.5)
    heartbeat.beat(now=1.5)
    clock.advance(1.5)
    # Then the message is still hidden; without another beat it is back at 3.5 s
    assert transport.receive("default", 1, 0, 2) == []
    clock.advance(0.6)
    assert [m.message_id for m in transport.receive("default", 1, 0, 2)] == [message.message_id]
    assert heartbeat.interval == 2 / 3


def test_the_acker_deletes_what_the_ledger_acknowledged_and_counts_it() -> None:
    # Given two messages run and acknowledged
    transport = MemoryTransport(clock=ManualClock())
    ledger = Ledger(transport.batch_size)
    messages = [one_received(transport, visibility_timeout=30) for _ in range(2)]
    for message in messages:
        ledger.accept([message], at_most=10, timeout=0, stopping=NOT_STOPPING)
        ledger.start(message, now=0.0)
        ledger.finish(message, acknowledged=True)
    # When the acker flushes
    Acker(transport, ledger).flush()
    # Then both are deleted on the broker and counted
    assert transport.stats("default").in_flight == 0
    assert ledger.stats.acked == 2


def beats_for(heartbeat: Heartbeat, clock: ManualClock, seconds: float) -> None:
    """Beat every ``heartbeat.interval`` for ``seconds``, as the worker's heartbeat thread does."""
    beats = int(seconds / heartbeat.interval)
    for _ in range(beats):
        clock.advance(heartbeat.interval)
        heartbeat.beat(now=clock.monotonic())


def test_the_heartbeat_keeps_a_task_3x_longer_than_visibility_from_running_twice() -> None:
    # Given a task running for 3 s whose message was received with a 1 s visibility timeout
    clock = ManualClock()
    transport = MemoryTransport(clock=clock)
    message = one_received(transport, visibility_timeout=1)
    ledger = Ledger(transport.batch_size)
    ledger.accept([message], at_most=10, timeout=0, stopping=NOT_STOPPING)
    ledger.start(message, now=clock.monotonic())
    heartbeat = Heartbeat(transport, ledger, visibility_timeout=1)
    # When the heartbeat beats through those 3 s, a second worker polling all along
    seen_by_another = []
    for _ in range(3):
        beats_for(heartbeat, clock, 1.0)
        seen_by_another += transport.receive("default", 1, 0, 1)
    # Then no other worker got it, and once acknowledged it is gone
    assert seen_by_another == []
    ledger.finish(message, acknowledged=True)
    Acker(transport, ledger).flush()
    clock.advance(2)
    assert transport.receive("default", 1, 0, 1) == []


def test_the_heartbeat_stops_at_the_task_timeout_so_the_message_reappears() -> None:
    # Given a task with timeout=1 that hangs, its message received with a 1 s visibility timeout
    clock = ManualClock()
    transport = MemoryTransport(clock=clock)
    message = one_received(transport, visibility_timeout=1)
    ledger = Ledger(transport.batch_size)
    ledger.accept([message], at_most=10, timeout=0, stopping=NOT_STOPPING)
    running = ledger.start(message, now=clock.monotonic())
    assert running is not None
    running.timeout = 1.0
    heartbeat = Heartbeat(transport, ledger, visibility_timeout=1)
    # When the heartbeat beats for 2.5 s
    beats_for(heartbeat, clock, 2.5)
    # Then it was not extended past the timeout: another worker receives it again
    again = transport.receive("default", 1, 0, 1)
    assert [m.message_id for m in again] == [message.message_id]
    assert again[0].receive_count == 2
