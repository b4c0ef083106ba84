"""The ``PayloadStore`` protocol (the claim check) and the pointer a message or a result
record carries instead of a large value.

Engines store bytes under keys; what is offloaded, when, and how it is checked is decided
once above them, in ``cloudq/codec.py`` (arguments) and ``cloudq/runtime/results.py`` (results).
An object is JSON text; its pointer names the key, the object's SHA-256 and its size, so a
reader refuses an object that is not the one written (and HMAC signing of a message covers
the pointer, hence the hash).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from cloudq.core.pointer import ARGUMENTS_FOLDER, RESULTS_FOLDER, PayloadPointer, digest

__all__ = ["ARGUMENTS_FOLDER", "RESULTS_FOLDER", "PayloadPointer", "PayloadStore", "digest"]


@runtime_checkable
class PayloadStore(Protocol):
    """Objects by key. Every method is safe to call from several threads at once.

    ``put`` is atomic (a reader sees the whole object or none); ``get`` of a key that was
    never written, was deleted or has expired raises ``PayloadMissingError``; any other
    failure raises ``PayloadStoreError``. Objects expire by the store's own rule (an S3
    lifecycle rule, a Redis TTL); ``delete`` of a missing key is not an error.
    """

    #: Where objects go, for messages (``s3://bucket/prefix``).
    location: str

    def key_for(self, name: str) -> str:
        """The full key of object ``name`` (the store's prefix added)."""
        ...

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None: ...
