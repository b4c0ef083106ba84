"""Helpers for testing tasks without a worker process (dramatiq's ``join``, for cloudq).

``drain(app)`` runs every message of the app's queues through the real executor, in this
thread, until the queues are empty, and raises the first final task failure.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from cloudq.errors import TaskError
from cloudq.execution import Action, Executor, apply_outcome

if TYPE_CHECKING:
    from collections.abc import Sequence

    from cloudq.app import CloudQ


def drain(
    app: CloudQ,
    queues: Sequence[str] | None = None,
    *,
    timeout: float = 30.0,
    raise_failures: bool = True,
) -> int:
    """Process messages until every queue is empty (delayed and in-flight ones included).

    Returns how many messages were processed. Raises ``TaskError`` for the first message
    dead-lettered (a final failure, a bad message) when ``raise_failures``, after draining.
    Raises ``TimeoutError`` if the queues are not empty after ``timeout`` seconds.
    """
    names = list(queues or sorted(app.queue_names()))
    executor = Executor(app)
    transport = app.transport
    deadline = time.monotonic() + timeout
    processed = 0
    first_failure: TaskError | None = None
    while True:
        busy = False
        for queue in names:
            for message in transport.receive(queue, 10, wait_seconds=0):
                busy = True
                processed += 1
                outcome = executor.execute(message)
                apply_outcome(transport, message, outcome)
                if outcome.action is Action.DEAD_LETTER and first_failure is None:
                    first_failure = TaskError(message.message_id, "DeadLettered", outcome.reason)
        if not busy and _empty(app, names):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"queues {names} not drained after {timeout} s")
        if not busy:
            time.sleep(0.01)
    if first_failure is not None and raise_failures:
        raise first_failure
    return processed


def _empty(app: CloudQ, queues: Sequence[str]) -> bool:
    for queue in queues:
        stats = app.transport.stats(queue)
        if stats.visible or stats.in_flight or stats.delayed:
            return False
    return True
