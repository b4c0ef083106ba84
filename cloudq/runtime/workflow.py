"""What the executor does when a task of a workflow has finished (the envelope's version-5
fields, built by ``cloudq/canvas.py``).

- ``callbacks`` (a chain's next link): on SUCCESS each is sent with the result first in its
  arguments (unless immutable); on FAILURE or REVOKED each link that will not run gets a
  FAILURE record with the error, so the chain's handle shows it.
- ``chord``: the member counts itself once in the result backend (``count_once``; a plain
  counter would count a redelivered member twice). The member whose addition completes the
  count sends the callback with every member's result, in order; if a member failed or was
  revoked, the callback fails with that member's error instead (Celery's behaviour). A
  redelivered member that finds the count complete sends the callback again under its same
  id: the claim rule runs it at most once, and a crash between counting and sending loses
  nothing.

Every step is idempotent by task id, so the executor retries the message when a step fails
(the next delivery finds the task done and repeats the step).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cloudq.backends.base import ResultRecord, State
from cloudq.core.errors import ConfigurationError
from cloudq.core.message import Link, Message, chord_member_id
from cloudq.transports.base import require_sent

if TYPE_CHECKING:
    from cloudq.app.base import CloudQ
    from cloudq.app.sending import Outgoing
    from cloudq.backends.base import ResultBackend


def chord_key(chord_id: str) -> str:
    return f"chord:{chord_id}"


def finished(
    app: CloudQ,
    message: Message,
    state: State,
    value: Any = None,
    error: tuple[str, str] = ("", ""),
    redelivered: bool = False,
) -> None:
    """The workflow steps of ``message``'s task, which ended in ``state`` (SUCCESS with
    ``value``, FAILURE or REVOKED with ``error``: type, message). Raises ``CloudQError`` when
    a step could not be done (the caller keeps the message)."""
    if state is State.SUCCESS:
        send_links(app, message.callbacks, value)
    else:
        fail_links(app, message.callbacks, message.id, state, error)
    if message.chord is not None:
        _count_member(app, message, redelivered)


def send_links(app: CloudQ, links: list[Link], value: Any) -> None:
    outs = [_link_outgoing(app, link, [value]) for link in links]
    if outs:
        require_sent(outs[0].queue, app.send_messages(outs))


def _link_outgoing(app: CloudQ, link: Link, before: list[Any]) -> Outgoing:
    args = link.args if link.immutable else [*before, *link.args]
    from cloudq.options import SendOptions  # sending only: not at import (issue 14)

    options = SendOptions(queue=link.queue, task_id=link.id)
    return app.sender.outgoing(link.task, args, link.kwargs, options, callbacks=link.callbacks)


def fail_links(app: CloudQ, links: list[Link], parent_id: str, state: State, error: tuple[str, str]) -> None:
    """Record FAILURE for ``links`` and what follows them: they will not run (without a
    result backend there is nothing to record)."""
    backend = app.backend
    if backend is None:
        return
    error_type = error[0] or ("TaskRevokedError" if state is State.REVOKED else "Error")
    text = f"{parent_id} {'was revoked' if state is State.REVOKED else 'failed'}: {error[1]}".rstrip(": ")
    pending = list(links)
    now = app.clock.time()
    while pending:
        link = pending.pop()
        backend.put(
            ResultRecord(
                task_id=link.id,
                task_name=link.task,
                state=State.FAILURE,
                error_type=error_type,
                error_message=text,
                date_done=now,
                expires_at=app.result_expiry(now),
            )
        )
        pending.extend(link.callbacks)


def _count_member(app: CloudQ, message: Message, redelivered: bool) -> None:
    chord = message.chord
    assert chord is not None
    backend = _backend(app)
    added, count = backend.count_once(chord_key(chord.id), message.id, app.result_expiry())
    if count < chord.size or not (added or redelivered):
        return
    ids = [chord_member_id(chord.id, index) for index in range(chord.size)]
    records = backend.get_many(ids)
    for member_id in ids:
        record = records.get(member_id)
        if record is None or record.state is not State.SUCCESS:
            _fail_callback(app, chord.callback, member_id, record)
            return
    send_links(app, [chord.callback], [records[member_id].value for member_id in ids])


def _fail_callback(app: CloudQ, callback: Link, member_id: str, record: ResultRecord | None) -> None:
    if record is None:
        state, error = State.FAILURE, ("ChordError", "its result is missing (expired?)")
    else:
        state, error = record.state, (record.error_type or "", record.error_message or "")
    fail_links(app, [callback], f"chord member {member_id}", state, error)


def _backend(app: CloudQ) -> ResultBackend:
    backend = app.backend
    if backend is None:
        raise ConfigurationError(f"app {app.name!r} has results turned off: a chord needs a result backend")
    return backend
