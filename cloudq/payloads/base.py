"""The ``PayloadStore`` protocol (the claim check) and the pointer a message or a result
record carries instead of a large value.

Engines store bytes under keys; what is offloaded, when, and how it is checked is decided
once above them, in ``cloudq/codec.py`` (arguments) and ``cloudq/runtime/results.py`` (results).
An object is JSON text; its pointer names the key, the object's SHA-256 and its size, so a
reader refuses an object that is not the one written (and HMAC signing of a message covers
the pointer, hence the hash).
"""

from __future__ import annotations

import hashlib
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

#: Where the codec puts objects under a store's prefix; the bucket's lifecycle rules
#: (``cloudq.infra.model``) expire each folder on its own schedule.
ARGUMENTS_FOLDER = "args/"
RESULTS_FOLDER = "results/"


class PayloadPointer(BaseModel):
    """Where an offloaded value is, and what it must hash to."""

    # Built on first use, like the models that hold it (issue 14: not at ``import cloudq``).
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    #: The object's key in the store (the store's prefix included).
    key: str = Field(min_length=1)
    #: Hex SHA-256 of the object's bytes.
    sha256: str = Field(min_length=64, max_length=64)
    size: int = Field(ge=0)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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
