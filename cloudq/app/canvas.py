"""Workflows: signatures, ``chain``, ``group``, ``chord``, and batch sending.

A ``Signature`` is a task call not sent yet (``add.s(1)``, ``add.si(1, 2)``). Its arguments
are checked when it is made; where it gets another's result (a chain link, a chord
callback), it is checked again with that argument's place, when the workflow is made.

How a workflow travels (the envelope's version-5 fields, ``cloudq.core.message``):

- ``chain(a, b, c)`` sends ``a`` with ``callbacks=[b → c]``; when ``a`` succeeds the executor
  sends ``b`` with ``a``'s result first in its arguments, and ``b`` carries ``c``. Every id is
  chosen here, so the chain's handle (``c``'s result) exists before anything ran, and a
  failure is written onto the links that will not run.
- ``group(...)`` sends its members in batches (SQS: 10 per call).
- ``chord(header, callback)`` sends the header's members, each with ``chord=`` (the chord id,
  its size and the callback); a finishing member counts itself once in the result backend
  (``count_once``), and the one that completes the count sends the callback.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from cloudq.app.result import AsyncResult, GroupResult
from cloudq.core.errors import ArgumentError, ConfigurationError, PartialSendError
from cloudq.core.message import ChordLink, Link, chord_member_id, new_task_id
from cloudq.options import SendOptions

if TYPE_CHECKING:
    from cloudq.app.base import CloudQ
    from cloudq.app.sending import Outgoing
    from cloudq.app.task import Task

R = TypeVar("R")


class Signature(Generic[R]):
    """A task call to send later: ``task.s(*args, **kwargs)`` or, immutable, ``task.si(...)``.

    A mutable signature gets the previous task's result as its first argument in a chain or
    as a chord callback; an immutable one is sent with its arguments as they are.
    """

    def __init__(
        self,
        task: Task[Any, R],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        immutable: bool = False,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.task = task
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.immutable = immutable
        self.options = dict(options or {})
        if immutable:
            self.arguments(leading=0)
        else:
            task.arguments.check_partial(self.args, self.kwargs)

    def __repr__(self) -> str:
        return f"<Signature {self.task.name}{'!' if self.immutable else ''} {self.args} {self.kwargs}>"

    @property
    def app(self) -> CloudQ:
        return self.task.app

    def set(self, **options: Any) -> Signature[R]:
        """The same call with send options: ``queue``, ``task_id``, ``message_group_id``,
        ``deduplication_id``, ``countdown``, ``eta``, ``expires``."""
        SendOptions.of(options)  # checked now, not when sent
        return Signature(
            self.task, self.args, self.kwargs, immutable=self.immutable, options={**self.options, **options}
        )

    def arguments(self, leading: int) -> tuple[list[Any], dict[str, Any]]:
        """The JSON arguments, checked against the task with ``leading`` arguments still to
        come first (1 where a mutable signature gets a result); ``ArgumentError`` if they do
        not fit."""
        leading = 0 if self.immutable else leading
        return self.task.arguments.encode(self.args, self.kwargs, leading=leading)

    def link(self, leading: int, callbacks: Sequence[Link] = ()) -> Link:
        """This call as a link of a workflow: checked, with its own id."""
        args, kwargs = self.arguments(leading)
        return Link(
            id=self.options.get("task_id") or new_task_id(),
            task=self.task.name,
            args=args,
            kwargs=kwargs,
            immutable=self.immutable,
            queue=self.options.get("queue") or self.task.queue,
            callbacks=list(callbacks),
        )

    def outgoing(self, *extra: Any, **overrides: Any) -> Outgoing:
        """This call's envelope, with ``extra`` arguments put first (unless immutable)."""
        args = self.args if self.immutable else (*extra, *self.args)
        json_args, json_kwargs = self.task.arguments.encode(args, self.kwargs)
        options = {**self.options, **overrides}
        names = SendOptions.names()
        send = SendOptions.of({key: value for key, value in options.items() if key in names})
        workflow = {key: value for key, value in options.items() if key not in names}
        send = replace(send, queue=send.queue or self.task.queue)
        return self.app.sender.outgoing(self.task.name, json_args, json_kwargs, send, **workflow)

    def delay(self, *args: Any) -> AsyncResult[R]:
        """Send it, with ``args`` put first (a mutable signature's missing arguments)."""
        return self.apply_async(args)

    def apply_async(self, args: tuple[Any, ...] = (), **options: Any) -> AsyncResult[R]:
        signature = self.set(**options) if options else self
        [result] = send_signatures(self.app, [signature], extra=tuple(args))
        return result

    def __or__(self, other: Signature[Any] | chain) -> chain:
        return chain(self, other)


class chain:  # noqa: N801 - Celery's name
    """``chain(a.s(1), b.s(), c.s())``: each result is passed to the next; a failure stops the
    chain, and the links that will not run fail with its error (the chain's handle shows it)."""

    def __init__(self, *steps: Signature[Any] | chain | group | chord) -> None:
        flat: list[Signature[Any] | group | chord] = []
        for step in steps:
            flat.extend(step.steps if isinstance(step, chain) else [step])
        if not flat:
            raise ArgumentError("chain() needs at least one signature")
        if any(not isinstance(step, Signature) for step in flat[1:]):
            raise ArgumentError("a group or chord can only start a chain (a group then becomes a chord)")
        self.steps: list[Signature[Any] | group | chord] = flat
        self._links = self._check()

    def _check(self) -> list[Link]:
        # Links from the last to the first; each carries the rest of the chain.
        links: list[Link] = []
        rest: list[Link] = []
        for position, step in reversed(list(enumerate(self.steps))):
            if not isinstance(step, Signature):
                break
            link = step.link(1 if position else 0, rest)
            links.insert(0, link)
            rest = [link]
        return links

    def __or__(self, other: Signature[Any] | chain) -> chain:
        return chain(self, other)

    def delay(self) -> AsyncResult[Any]:
        return self.apply_async()

    def apply_async(self) -> AsyncResult[Any]:
        """Send the first step; returns the last link's handle (``.parent`` leads back)."""
        first = self.steps[0]
        if isinstance(first, (group, chord)):
            header = first.header if isinstance(first, chord) else first
            rest = ([first.callback] if isinstance(first, chord) else []) + list(self.steps[1:])
            return chord(header, chain(*rest)).apply_async()
        head, *links = self._links
        app = first.app
        out = first.outgoing(task_id=head.id, callbacks=head.callbacks)
        require_all(app, [out])
        result: AsyncResult[Any] = AsyncResult(head.id, app, task=first.task)
        for step, link in zip(self.steps[1:], links, strict=True):
            assert isinstance(step, Signature)
            result = AsyncResult(link.id, app, task=step.task, parent=result)
        return result


class group:  # noqa: N801 - Celery's name
    """``group(add.s(1, 1), add.s(2, 2))`` or ``group(add.s(i, i) for i in range(100))``:
    sent in batches, one handle for all (``GroupResult``)."""

    def __init__(self, *signatures: Signature[Any] | Iterable[Signature[Any]]) -> None:
        members: list[Signature[Any]] = []
        for item in signatures:
            members.extend([item] if isinstance(item, Signature) else item)
        for member in members:
            if not isinstance(member, Signature):
                raise ArgumentError(
                    f"group members are signatures (task.s(...)), not {type(member).__name__}"
                )
            member.arguments(0)
        self.members = members

    def delay(self) -> GroupResult:
        return self.apply_async()

    def apply_async(self) -> GroupResult:
        if not self.members:
            raise ArgumentError("group() has no members")
        app = self.members[0].app
        return GroupResult(send_signatures(app, self.members), app)


class chord:  # noqa: N801 - Celery's name
    """``chord(group, callback)``: the callback runs once, when every member has finished,
    with their results in order (first argument, unless immutable). If a member fails (or
    was revoked), the callback fails with that member's error and does not run (as in
    Celery). Needs a result backend: the members are counted there."""

    def __init__(self, header: group | Iterable[Signature[Any]], callback: Signature[Any] | chain) -> None:
        self.header = header if isinstance(header, group) else group(header)
        steps = callback.steps if isinstance(callback, chain) else [callback]
        if any(not isinstance(step, Signature) for step in steps):
            raise ArgumentError("a chord's callback is a signature or a chain of signatures")
        self.callback: Signature[Any] | chain = callback
        app = steps[0].app  # type: ignore[union-attr]
        if app.backend is None:
            raise ConfigurationError(
                f"app {app.name!r} has results turned off (backend=None): a chord counts its "
                "members in the result backend; set a backend to use chord()"
            )
        self._links = chain(*steps)._check() if isinstance(callback, chain) else [callback.link(1)]

    def delay(self) -> AsyncResult[Any]:
        return self.apply_async()

    def apply_async(self) -> AsyncResult[Any]:
        """Send the members; returns the callback's handle (the last link's, for a chain)."""
        head = self._links[0]
        steps = self.callback.steps if isinstance(self.callback, chain) else [self.callback]
        app = steps[0].app  # type: ignore[union-attr]
        members = self.header.members
        if not members:  # nothing to wait for: the callback runs on an empty list
            first = steps[0]
            assert isinstance(first, Signature)
            out = first.outgoing([], task_id=head.id, callbacks=head.callbacks)
            require_all(app, [out])
        else:
            link = ChordLink(id=head.id, size=len(members), callback=head)
            outs = [
                member.outgoing(task_id=chord_member_id(head.id, i), chord=link)
                for i, member in enumerate(members)
            ]
            require_all(app, outs)
        return AsyncResult(self._links[-1].id, app)


def send_signatures(
    app: CloudQ, signatures: list[Signature[Any]], extra: tuple[Any, ...] = ()
) -> list[AsyncResult[Any]]:
    """Check every signature, then send them all in batches; ``PartialSendError`` when some
    were not sent."""
    outs = [signature.outgoing(*extra) for signature in signatures]
    return require_all(app, outs, [signature.task for signature in signatures])


def require_all(
    app: CloudQ, outs: list[Outgoing], tasks: Sequence[Task[Any, Any] | None] = ()
) -> list[AsyncResult[Any]]:
    """Send ``outs``; their handles, or ``PartialSendError`` naming each one not sent."""
    results = app.send_messages(outs)
    handles = [
        AsyncResult(out.message.id, app, task=tasks[i] if i < len(tasks) else None)
        for i, out in enumerate(outs)
    ]
    failed = [(i, result.error or "not sent") for i, result in enumerate(results) if not result.sent]
    if failed:
        sent = [handle for handle, result in zip(handles, results, strict=True) if result.sent]
        raise PartialSendError(sent, failed, len(outs))
    return handles
