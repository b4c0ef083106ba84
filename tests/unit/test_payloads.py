"""The claim check on the in-process engines: large arguments and results travel through the
payload store as a version 3 pointer, and every way a pointer can go wrong ends in one
outcome with a reason."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cloudq import CloudQ, Message, State, TaskError
from cloudq.backends.base import ResultRecord
from cloudq.backends.memory import MemoryBackend
from cloudq.core.errors import MessageTooLargeError, ResultTooLargeError
from cloudq.payloads.memory import MemoryPayloadStore
from cloudq.testing import drain
from tests.tasks import make_app

BIG = "x" * 2_000_000  # a 2 MB argument: twice what SQS takes


class LimitedBackend(MemoryBackend):
    """The memory engine with DynamoDB's refusal of items over a limit."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def _check(self, record: ResultRecord) -> None:
        if len(record.model_dump_json()) > self.limit:
            raise ResultTooLargeError(f"record of {record.task_id} over {self.limit} bytes")

    def put(self, record: ResultRecord) -> None:
        self._check(record)
        super().put(record)

    def put_unless_superseded(self, record: ResultRecord, attempt: int) -> ResultRecord | None:
        self._check(record)
        return super().put_unless_superseded(record, attempt)


def _app(store: MemoryPayloadStore | None = None, **settings: Any) -> CloudQ:
    return make_app(
        "payloads",
        broker="memory://",
        result_backend=LimitedBackend(400_000),
        payloads=store,
        **settings,
    )


def _bodies(app: CloudQ, queue: str = "default") -> list[str]:
    got = app.transport.receive(queue, 10, wait_seconds=0)
    for message in got:
        app.transport.change_visibility(queue, message.receipt_handle, 0)
    return [message.body for message in got]


def test_a_2mb_argument_travels_as_a_small_v3_pointer_and_the_object_is_gone_after_success() -> None:
    # Given an app with a payload store
    store = MemoryPayloadStore()
    app = _app(store)
    # When a task gets a 2 MB argument
    result = app.tasks["echo"].delay(BIG)
    # Then the message is a small version 3 pointer, and the arguments are in the store
    (body,) = _bodies(app)
    assert len(body) < 1024
    envelope = json.loads(body)
    assert envelope["v"] == 3 and envelope["args"] == [] and envelope["payload"]["size"] > 2_000_000
    assert len(store.keys()) == 1
    # And the task ran with the whole argument; its 2 MB result went to the store too
    drain(app)
    assert result.get(timeout=1) == BIG
    record = result.record()
    assert record is not None and record.value is None and record.value_pointer is not None
    # And the argument object was deleted on success; the result object stays (lifecycle)
    assert store.keys() == [record.value_pointer.key]


def test_small_messages_stay_version_1_with_no_object() -> None:
    store = MemoryPayloadStore()
    app = _app(store)
    app.tasks["add"].delay(1, 2)
    (body,) = _bodies(app)
    assert json.loads(body)["v"] == 1 and "payload" not in json.loads(body)
    assert store.keys() == []


def test_without_a_store_a_large_argument_is_refused_at_delay() -> None:
    app = _app(None)
    with pytest.raises(MessageTooLargeError, match="over the broker limit"):
        app.tasks["echo"].delay(BIG)


def test_without_a_store_a_large_result_is_a_failure_with_the_reason() -> None:
    app = _app(None, payload_threshold=None)
    result = app.tasks["echo"].delay("y" * 600_000)
    drain(app, raise_failures=False)
    with pytest.raises(TaskError, match="ResultTooLargeError"):
        result.get(timeout=1)


def test_a_600kb_result_goes_to_the_store_and_get_fetches_it() -> None:
    store = MemoryPayloadStore()
    app = _app(store)
    value = {"report": "r" * 600_000}
    result = app.tasks["echo"].delay(value)  # a 600 KB argument stays inline: under SQS's limit
    assert json.loads(_bodies(app)[0])["v"] == 1
    drain(app)
    assert result.get(timeout=1) == value and result.result == value
    assert result.state is State.SUCCESS


def test_a_missing_object_fails_the_task_with_the_reason_and_dead_letters_it() -> None:
    store = MemoryPayloadStore()
    app = _app(store)
    result = app.tasks["echo"].delay(BIG)
    for key in store.keys():
        store.delete(key)
    drain(app, raise_failures=False)
    with pytest.raises(TaskError, match="PayloadMissingError.*missing") as failure:
        result.get(timeout=1)
    assert failure.value.error_type == "PayloadMissingError"
    assert len(app.transport.receive("default-dlq", 10, wait_seconds=0)) == 1


def test_a_replaced_object_is_refused_as_a_signature_error_with_signing_on() -> None:
    store = MemoryPayloadStore()
    app = _app(store, signing_keys=("k1",))
    result = app.tasks["echo"].delay(BIG)
    (key,) = store.keys()
    store.put(key, json.dumps({"args": ["evil" + BIG[4:]], "kwargs": {}}).encode())
    drain(app, raise_failures=False)
    with pytest.raises(TaskError) as failure:
        result.get(timeout=1)
    assert failure.value.error_type == "SignatureError"
    assert len(app.transport.receive("default-dlq", 10, wait_seconds=0)) == 1


def test_a_swapped_pointer_breaks_the_signature() -> None:
    store = MemoryPayloadStore()
    app = _app(store, signing_keys=("k1",))
    app.tasks["echo"].delay(BIG)
    (body,) = _bodies(app)
    message = Message.model_validate_json(body)
    assert message.payload is not None
    other = message.payload.model_copy(update={"sha256": "0" * 64})
    with pytest.raises(Exception, match="signature does not match"):
        app.codec.decode(message.model_copy(update={"payload": other}).model_dump_json(exclude_none=True))


def test_a_duplicate_of_a_succeeded_task_is_acknowledged_though_its_object_is_gone() -> None:
    # Given a large task that succeeded (its argument object deleted)
    store = MemoryPayloadStore()
    app = _app(store)
    result = app.tasks["echo"].delay(BIG)
    (body,) = _bodies(app)
    drain(app)
    # When the same message is delivered again
    from cloudq.transports import OutgoingMessage

    app.transport.send("default", [OutgoingMessage(body)])
    drain(app)
    # Then it is acknowledged, not failed for the missing object
    assert result.get(timeout=1) == BIG


def test_a_signed_v1_message_keeps_the_bytes_older_senders_signed() -> None:
    # The canonical bytes of a message without the newer fields have none of their keys: the
    # bytes the last release (envelope version 1 only) signed.
    canonical = json.loads(Message(id="t", task="add").canonical())
    assert not {"payload", "attempt_base", "history", "chord"} & set(canonical)
