"""A new life for a message back from the dead-letter queue, whichever way it came back
(``cloudq dlq replay``, or moved back by the broker and seen by the executor): written once."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cloudq.app.base import CloudQ
    from cloudq.core.message import Message


def new_life(app: CloudQ, message: Message, reason: str) -> Message:
    """``message`` back from the dead-letter queue, by ``cloudq dlq replay`` or moved back by
    the broker (``Executor``): a fresh retry budget (the attempts spent so far become its
    base), and the final error of the life that ended (``reason``) added to its history.
    Raises ``BackendError`` when the attempts cannot be read."""
    record = app.backend.get(message.id) if app.backend is not None else None
    attempts = record.attempts if record is not None else (message.attempt_base or 0)
    when = dt.datetime.fromtimestamp(app.clock.time(), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    note = f"{reason} (dead-lettered after {attempts} attempt(s); replayed {when})"
    return message.replayed(attempts, note)
