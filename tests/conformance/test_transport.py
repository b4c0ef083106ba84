"""The Transport contract (cloudq/transports/base.py), the same tests for every engine."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from cloudq import CloudQ
from cloudq.core.clock import ManualClock
from cloudq.core.errors import ConfigurationError, MessageTooLargeError
from cloudq.ops.dead_letters import list_dead_letters
from cloudq.transports.base import (
    REASON_ATTRIBUTE,
    SOURCE_QUEUE_ATTRIBUTE,
    DeadLetterNote,
    OutgoingMessage,
    Transport,
    require_sent,
)
from cloudq.transports.memory import MemoryTransport
from cloudq.transports.sqs import SQS_MAX_MESSAGE_ATTRIBUTES, SQSTransport
from tests.conformance.conftest import VISIBILITY_TIMEOUT

PassTime = Callable[[float], None]

Q = "work"
FIFO = "orders.fifo"


def send(transport: Transport, *bodies: str, queue: str = Q, **options: object) -> list[str]:
    results = transport.send(queue, [OutgoingMessage(body, **options) for body in bodies])  # type: ignore[arg-type]
    return require_sent(queue, results)


def receive_all(transport: Transport, queue: str = Q, expected: int = 1, wait: float = 5) -> list:  # type: ignore[type-arg]
    """Receive until ``expected`` messages arrived or ``wait`` passed (SQS may split batches)."""
    got: list = []  # type: ignore[type-arg]
    deadline = time.monotonic() + wait
    while len(got) < expected and time.monotonic() < deadline:
        got += transport.receive(queue, 10, wait_seconds=1)
    return got


def test_a_sent_message_is_received_with_its_body_and_attributes(transport: Transport) -> None:
    [message_id] = send(transport, '{"hello": "wörld"}', attributes={"kind": "greeting"})
    [got] = receive_all(transport)
    assert (got.message_id, got.body, got.queue) == (message_id, '{"hello": "wörld"}', Q)
    assert got.attributes["kind"] == "greeting"
    assert got.receive_count == 1
    assert got.sent_timestamp_ms > 0


def test_receive_returns_at_most_max_messages(transport: Transport) -> None:
    send(transport, *[f"m{i}" for i in range(5)])
    got = transport.receive(Q, 2, wait_seconds=1)
    assert 1 <= len(got) <= 2


def test_a_batch_of_25_all_arrive_once(transport: Transport) -> None:
    bodies = [f"m{i}" for i in range(25)]
    assert len(send(transport, *bodies)) == 25
    got = receive_all(transport, expected=25, wait=10)
    assert sorted(message.body for message in got) == sorted(bodies)


def test_an_empty_receive_waits_then_returns_nothing(transport: Transport) -> None:
    started = time.monotonic()
    assert transport.receive(Q, 10, wait_seconds=1) == []
    assert time.monotonic() - started >= 0.9


def test_long_poll_returns_as_soon_as_a_message_arrives(transport: Transport) -> None:
    threading.Timer(0.5, lambda: send(transport, "late")).start()
    started = time.monotonic()
    got = transport.receive(Q, 10, wait_seconds=10)
    assert [message.body for message in got] == ["late"]
    assert time.monotonic() - started < 5


@pytest.mark.needs_capability(
    "visibility_timeouts", why="a received message stays with its receiver until settled, no timeout"
)
def test_a_received_message_is_hidden_then_comes_back_with_a_higher_count(
    transport: Transport, pass_time: PassTime
) -> None:
    send(transport, "once")
    [first] = receive_all(transport)
    assert transport.receive(Q, 10, wait_seconds=0) == []
    pass_time(VISIBILITY_TIMEOUT + 0.2)
    [again] = receive_all(transport)
    assert (again.message_id, again.receive_count) == (first.message_id, 2)


def test_an_acked_message_never_comes_back_and_acking_twice_is_fine(
    transport: Transport, pass_time: PassTime
) -> None:
    send(transport, "done")
    [got] = receive_all(transport)
    transport.ack(Q, [got.receipt_handle])
    transport.ack(Q, [got.receipt_handle])
    pass_time(VISIBILITY_TIMEOUT + 0.2)
    assert transport.receive(Q, 10, wait_seconds=0) == []


def test_visibility_zero_hands_a_message_back_at_once(transport: Transport) -> None:
    send(transport, "back")
    [got] = receive_all(transport)
    transport.change_visibility(Q, got.receipt_handle, 0)
    [again] = receive_all(transport, wait=1.5)
    assert again.message_id == got.message_id


def test_extending_visibility_keeps_a_message_hidden_past_the_timeout(
    transport: Transport, pass_time: PassTime
) -> None:
    send(transport, "long")
    [got] = receive_all(transport)
    transport.change_visibility(Q, got.receipt_handle, 10)
    pass_time(VISIBILITY_TIMEOUT + 0.5)
    assert transport.receive(Q, 10, wait_seconds=0) == []


def test_extend_visibility_extends_a_batch_and_ignores_stale_handles(
    transport: Transport, pass_time: PassTime
) -> None:
    send(transport, *[f"m{i}" for i in range(12)])
    got = receive_all(transport, expected=12, wait=10)
    transport.ack(Q, [got[0].receipt_handle])
    transport.extend_visibility(Q, [message.receipt_handle for message in got], 10)
    pass_time(VISIBILITY_TIMEOUT + 0.5)
    assert transport.receive(Q, 10, wait_seconds=0) == []


def test_a_stale_receipt_handle_is_ignored(transport: Transport) -> None:
    # Given a message received and deleted
    send(transport, "stale")
    [got] = receive_all(transport)
    transport.ack(Q, [got.receipt_handle])
    # When its stale handle is made visible again: no error
    transport.change_visibility(Q, got.receipt_handle, 0)
    # Then the deleted message does not come back
    assert transport.receive(Q, 10, wait_seconds=1) == []


def test_delay_seconds_hide_a_message_until_then(transport: Transport, pass_time: PassTime) -> None:
    send(transport, "later", delay_seconds=2)
    assert transport.receive(Q, 10, wait_seconds=0) == []
    assert transport.stats(Q).delayed == 1
    pass_time(2)
    [got] = receive_all(transport, wait=4)
    assert got.body == "later"


def test_dead_letter_moves_the_body_with_a_reason_and_removes_it(
    transport: Transport, pass_time: PassTime
) -> None:
    send(transport, "poison", attributes={"kind": "bad"})
    [got] = receive_all(transport)
    transport.dead_letter(got, "DecodeError: not a cloudq message")
    [dead] = receive_all(transport, queue="work-dlq")
    assert dead.body == "poison"
    assert DeadLetterNote.from_attributes(dead.attributes) == DeadLetterNote(
        "DecodeError: not a cloudq message", Q
    )
    assert dead.attributes["kind"] == "bad"
    pass_time(VISIBILITY_TIMEOUT + 0.2)
    assert transport.receive(Q, 10, wait_seconds=0) == []


def test_a_message_with_ten_attributes_is_dead_lettered_within_sqss_limit(transport: Transport) -> None:
    # Given a message from outside cloudq carrying 10 attributes, SQS's most (one of them
    # empty, as a binary attribute arrives)
    own = {f"attribute-{i}": f"value {i}" for i in range(9)} | {"binary": ""}
    send(transport, "foreign", attributes=own)
    [got] = receive_all(transport)
    # When it is dead-lettered
    transport.dead_letter(got, "DecodeError: not a cloudq message")
    # Then the copy keeps within the broker's limit (SQS refuses more than 10 attributes; the
    # emulators do not)
    [dead] = receive_all(transport, queue="work-dlq")
    if isinstance(transport, SQSTransport):
        assert len(dead.attributes) <= SQS_MAX_MESSAGE_ATTRIBUTES
    # And each of the message's own attributes is kept as it was, or named as left out (the
    # empty one first)
    note = DeadLetterNote.from_attributes(dead.attributes)
    assert note is not None
    kept = {name: value for name, value in dead.attributes.items() if name in own}
    assert kept == {name: own[name] for name in own if name not in note.dropped_attributes}
    if isinstance(transport, SQSTransport):
        assert note.dropped_attributes == ("binary",)
    # And `cloudq dlq list` reads the reason and the source queue
    transport.change_visibility("work-dlq", dead.receipt_handle, 0)
    [letter] = list_dead_letters(CloudQ("conformance", transport=transport, backend=None), Q)
    assert (letter.reason, letter.source_queue, letter.body) == (
        "DecodeError: not a cloudq message",
        Q,
        "foreign",
    )


def test_a_dead_letter_in_the_old_two_attribute_form_is_still_read(transport: Transport) -> None:
    # Given a dead letter as cloudq wrote them before (reason and source queue apart)
    old = {REASON_ATTRIBUTE: "KeyError: 'x'", SOURCE_QUEUE_ATTRIBUTE: Q}
    send(transport, '{"id": "t-1", "task": "tasks.add"}', queue="work-dlq", attributes=old)
    # When the dead-letter queue is listed
    [letter] = list_dead_letters(CloudQ("conformance", transport=transport, backend=None), Q)
    # Then its reason and source queue are read
    assert (letter.reason, letter.source_queue, letter.task_id) == ("KeyError: 'x'", Q, "t-1")


def test_stats_count_visible_and_in_flight(transport: Transport) -> None:
    send(transport, "a", "b", "c")
    assert transport.stats(Q).visible == 3
    got = transport.receive(Q, 1, wait_seconds=1)
    stats = transport.stats(Q)
    assert (stats.visible, stats.in_flight) == (3 - len(got), len(got))


def test_fifo_keeps_group_order_and_holds_a_group_while_one_is_in_flight(transport: Transport) -> None:
    send(transport, "a1", "a2", "a3", queue=FIFO, group_id="a")
    send(transport, "b1", queue=FIFO, group_id="b")
    first = transport.receive(FIFO, 1, wait_seconds=1)
    assert [m.body for m in first] == ["a1"]
    # While a1 is in flight, nothing more of group a is handed out
    others = transport.receive(FIFO, 10, wait_seconds=1)
    assert [m.body for m in others if m.group_id == "a"] == []
    transport.ack(FIFO, [first[0].receipt_handle])
    for message in others:
        transport.ack(FIFO, [message.receipt_handle])
    following = receive_all(transport, queue=FIFO)
    assert following[0].body == "a2"


def test_a_message_over_the_size_limit_is_refused(transport: Transport) -> None:
    too_big = "x" * (transport.max_message_bytes + 1)
    with pytest.raises(MessageTooLargeError):
        send(transport, too_big)


def test_send_answers_for_every_message_in_order(transport: Transport) -> None:
    # Given 23 messages (three SQS batches)
    bodies = [f"m{i}" for i in range(23)]
    # When they are sent
    results = transport.send(Q, [OutgoingMessage(body) for body in bodies])
    # Then each has its own result, in order, with the id it is received under
    assert [result.sent for result in results] == [True] * 23
    got = {message.message_id: message.body for message in receive_all(transport, expected=23, wait=10)}
    assert [got[result.message_id] for result in results if result.message_id] == bodies


def test_a_refused_entry_is_reported_and_the_rest_of_its_batch_is_sent(transport: Transport) -> None:
    # Given a batch whose middle body holds a character SQS refuses (U+0001)
    bodies = ["first", "bad\x01body", "last", *[f"m{i}" for i in range(12)]]
    # When it is sent
    results = transport.send(Q, [OutgoingMessage(body) for body in bodies])
    # Then that entry alone is refused, with the reason, and every other one arrives
    assert not results[1].sent and "InvalidMessageContents" in (results[1].error or "")
    assert all(result.sent for i, result in enumerate(results) if i != 1)
    got = receive_all(transport, expected=len(bodies) - 1, wait=10)
    assert sorted(message.body for message in got) == sorted(b for i, b in enumerate(bodies) if i != 1)


#: Engines whose queue cannot tell its oldest message's age without receiving it: SQS (only
#: CloudWatch knows), RabbitMQ (a queue declaration gives counts only).
NO_OLDEST_AGE = {"sqs-moto", "sqs-ministack", "sqs-ministack-lean", "amqp"}


def test_stats_say_the_oldest_messages_age_or_nothing_without_receiving_it(
    transport: Transport, pass_time: PassTime, request: pytest.FixtureRequest
) -> None:
    # Given an empty queue: no age
    assert transport.stats(Q).oldest_age_seconds is None
    # When two messages wait (the first sent a moment before the second)
    send(transport, "first")
    pass_time(0.3)
    send(transport, "second")
    stats = transport.stats(Q)
    # Then an engine that knows the age gives the first one's (SQS tells CloudWatch only)
    if request.node.callspec.params["transport"] in NO_OLDEST_AGE:
        assert stats.oldest_age_seconds is None
    else:
        assert stats.oldest_age_seconds is not None and 0.25 <= stats.oldest_age_seconds < 5
    # and reading the stats received nothing: both are still there, never received
    got = receive_all(transport, expected=2)
    assert sorted(message.body for message in got) == ["first", "second"]
    assert all(message.receive_count == 1 for message in got)


@pytest.mark.needs_capability("deduplication", why="RabbitMQ keeps no window of deduplication ids")
def test_a_fifo_queue_takes_a_repeated_deduplication_id_or_body_once(transport: Transport) -> None:
    # Given a FIFO queue, each message in a group of its own (a repeat would be visible at once)
    sends = [
        OutgoingMessage("a", group_id="g1", deduplication_id="d-1"),
        OutgoingMessage("b", group_id="g2", deduplication_id="d-1"),  # the id again
        OutgoingMessage("c", group_id="g3", deduplication_id="d-2"),  # another id
        OutgoingMessage("same", group_id="g4"),  # no id: the body's hash is the id
    ]
    # When they are sent, then the same body again without an id, one call each
    results = [*transport.send(FIFO, sends[:2]), *transport.send(FIFO, sends[2:])]
    results += transport.send(FIFO, [OutgoingMessage("same", group_id="g5")])
    # Then every send is accepted, as SQS answers a duplicate
    assert [result.sent for result in results] == [True] * 5
    # but the queue holds one message per deduplication id: a, c and one "same"
    got = receive_all(transport, queue=FIFO, expected=3)
    assert sorted(message.body for message in got) == ["a", "c", "same"]
    transport.ack(FIFO, [message.receipt_handle for message in got])
    assert transport.receive(FIFO, 10, wait_seconds=1) == []


def test_a_deduplication_id_counts_for_five_minutes_from_its_first_send() -> None:
    # Given the memory engine on a manual clock (no other engine's clock can be moved)
    clock = ManualClock()
    transport = MemoryTransport(clock=clock)

    def send_same() -> None:
        require_sent(FIFO, transport.send(FIFO, [OutgoingMessage("same", deduplication_id="d-1")]))

    # When the id is sent, then again 200 s and 299 s later
    send_same()
    clock.advance(200)
    send_same()
    clock.advance(99)
    send_same()
    # Then the repeats were dropped: one message
    [first] = transport.receive(FIFO, 10, wait_seconds=0)
    transport.ack(FIFO, [first.receipt_handle])
    # When it is sent 301 s after its first send (a repeat does not extend the window)
    clock.advance(2)
    send_same()
    # Then it is a message again
    assert [message.body for message in transport.receive(FIFO, 10, wait_seconds=0)] == ["same"]


def test_an_engine_without_deduplication_refuses_a_deduplication_id_on_a_fifo_queue(
    transport: Transport,
) -> None:
    if transport.deduplication:
        pytest.skip("this engine keeps deduplication (the tests above)")
    # When a FIFO send carries a deduplication id it cannot keep
    batch = [OutgoingMessage("a", group_id="g1"), OutgoingMessage("b", deduplication_id="d-1")]
    with pytest.raises(ConfigurationError, match="has no deduplication"):
        transport.send(FIFO, batch)
    # Then nothing of it was sent, and without an id a repeated body is two messages
    send(transport, "same", queue=FIFO, group_id="g2")
    send(transport, "same", queue=FIFO, group_id="g3")
    got = receive_all(transport, queue=FIFO, expected=2)
    assert [message.body for message in got] == ["same", "same"]
