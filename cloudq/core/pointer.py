"""The claim check's pointer: what a message or a result record carries instead of a value
too large for it (the envelope holds one, so it is a core value; the stores that hold the
objects are ``cloudq.payloads``)."""

from __future__ import annotations

import hashlib

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
