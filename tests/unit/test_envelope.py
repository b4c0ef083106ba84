"""The envelope's versions: what a worker of the previous version can read."""

from __future__ import annotations

import json

import pytest

from cloudq.core.errors import DecodeError
from cloudq.core.message import ENVELOPE_VERSION, Message


def test_an_ordinary_message_is_version_1_with_no_field_a_version_1_worker_lacks() -> None:
    body = json.loads(Message(id="t1", task="add", args=[1, 2]).encode(1024))
    assert body["v"] == ENVELOPE_VERSION == 1
    assert set(body) == {"v", "id", "task", "args", "kwargs", "retries", "callbacks"}


def test_a_replayed_message_is_version_2_with_a_fresh_budget_and_its_history() -> None:
    original = Message(id="t1", task="add", retries=4, signature="stale")
    replayed = Message.decode(original.replayed(5, "ValueError: boom").encode(1024))
    assert (replayed.v, replayed.retries, replayed.attempt_base) == (2, 0, 5)
    assert replayed.history == ["ValueError: boom"]
    assert replayed.signature is None  # the sender signs it again
    again = replayed.replayed(8, "KeyError: x")
    assert (again.attempt_base, again.history) == (8, ["ValueError: boom", "KeyError: x"])


def test_an_unknown_version_is_refused_with_a_reason_naming_the_fix() -> None:
    with pytest.raises(DecodeError, match="unsupported envelope version 99.*upgrade cloudq"):
        Message.decode(json.dumps({"v": 99, "id": "t", "task": "add"}))


def test_a_body_without_an_id_takes_the_broker_message_id_every_time() -> None:
    body = json.dumps({"task": "add", "args": [1, 2]})
    assert Message.decode(body, "m-1").id == Message.decode(body, "m-1").id == "m-1"
    assert Message.decode(json.dumps({"task": "add", "id": "own"}), "m-1").id == "own"
    with pytest.raises(DecodeError, match="id: missing"):
        Message.decode(body)
