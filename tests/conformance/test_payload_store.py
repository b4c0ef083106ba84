"""The PayloadStore contract (cloudq/payloads/base.py), the same tests for every engine."""

from __future__ import annotations

import threading

import pytest

from cloudq.core.errors import PayloadMissingError
from cloudq.payloads.base import PayloadStore


def test_an_object_round_trips_byte_for_byte(payload_store: PayloadStore) -> None:
    data = ("ünïcode " * 300_000).encode()  # 2.7 MB, over SQS's limit
    key = payload_store.key_for("args/t1/abc.json")
    payload_store.put(key, data)
    assert payload_store.get(key) == data


def test_keys_carry_the_stores_prefix(payload_store: PayloadStore) -> None:
    assert payload_store.key_for("x") != "x" and payload_store.key_for("x").endswith("x")


def test_a_missing_object_raises_payload_missing(payload_store: PayloadStore) -> None:
    with pytest.raises(PayloadMissingError, match="missing"):
        payload_store.get(payload_store.key_for("never-written"))


def test_a_deleted_object_is_missing_and_deleting_twice_is_fine(payload_store: PayloadStore) -> None:
    key = payload_store.key_for("gone")
    payload_store.put(key, b"{}")
    payload_store.delete(key)
    payload_store.delete(key)
    with pytest.raises(PayloadMissingError):
        payload_store.get(key)


def test_a_reader_sees_a_whole_object_while_it_is_replaced(payload_store: PayloadStore) -> None:
    key = payload_store.key_for("racy")
    first, second = b"a" * 300_000, b"b" * 300_000
    payload_store.put(key, first)
    seen: list[bytes] = []
    reader = threading.Thread(target=lambda: seen.extend(payload_store.get(key) for _ in range(5)))
    reader.start()
    payload_store.put(key, second)
    reader.join()
    assert all(value in (first, second) for value in seen)
