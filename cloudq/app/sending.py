"""Sending: a task call → a checked envelope → a body on the broker (Celery's ``app/amqp.py``
habit: the app keeps its registry and engines, sending lives here).

``CloudQ.send_task`` / ``outgoing`` / ``send_messages`` (and so ``.delay()``, canvas and beat)
go through one ``Sender`` per app. It builds the envelope (JSON arguments, the eta and expiry
from ``SendOptions`` on the app's clock, the route), refuses what cannot be sent before
anything is sent, and sends bodies batched per queue with their delay in whole seconds,
rounded up, so that no task arrives before its eta.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic import ValidationError

from cloudq.core.arguments import is_json
from cloudq.core.errors import ArgumentError, ConfigurationError
from cloudq.core.flow import check_priority
from cloudq.core.message import Message, new_task_id
from cloudq.core.naming import lane_queue_name
from cloudq.tracing import send_span
from cloudq.transports.base import OutgoingMessage, SendResult, is_fifo, require_sent

if TYPE_CHECKING:
    from cloudq.app.base import CloudQ
    from cloudq.app.result import AsyncResult
    from cloudq.app.task import Task
    from cloudq.options import SendOptions


@dataclass(frozen=True)
class Outgoing:
    """One envelope to send, and where: its queue and SQS's message group and deduplication ids."""

    message: Message
    queue: str
    message_group_id: str | None = None
    deduplication_id: str | None = None


class SendKeywords(NamedTuple):
    """The send options given as ``send_task`` keywords (they build one ``SendOptions``)."""

    countdown: float | None = None
    eta: dt.datetime | float | None = None
    expires: dt.datetime | float | None = None
    queue: str | None = None
    task_id: str | None = None
    message_group_id: str | None = None
    deduplication_id: str | None = None
    protocol: str | None = None
    priority: int | None = None


class Sender:
    """Sends the task calls of one app."""

    def __init__(self, app: CloudQ) -> None:
        self.app = app

    def send_task(
        self,
        name: str,
        args: list[Any] | tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        keywords: SendKeywords,
        options: SendOptions | None,
        *,
        task: Task[Any, Any] | None = None,
    ) -> AsyncResult[Any]:
        """Send one call by name (``CloudQ.send_task``): options as an object or as keywords,
        not both; traced when a trace is on; a refused send raises."""
        from cloudq.app.result import AsyncResult

        if options is None:
            from cloudq.options import SendOptions  # sending only: not at import (issue 14)

            options = SendOptions(**keywords._asdict())
        elif any(value is not None for value in keywords):
            raise ArgumentError(
                f"send_task({name!r}): give send options as options= or as keywords, not both"
            )
        now = self.app.clock.time()
        outgoing = self.outgoing(name, args, kwargs, options, now=now)
        with send_span(name) as traceparent:
            if traceparent is not None:
                outgoing = replace(outgoing, message=outgoing.message.traced(traceparent))
            [result] = self.send([outgoing], now=now)
        require_sent(outgoing.queue, [result])
        return AsyncResult(outgoing.message.id, self.app, task=task)

    def outgoing(
        self,
        name: str,
        args: list[Any] | tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        options: SendOptions | None = None,
        *,
        now: float | None = None,
        **workflow: Any,
    ) -> Outgoing:
        """The envelope of one task call and where it goes (``options``: ``SendOptions``),
        checked (JSON arguments, a valid envelope, no delay on a FIFO queue); ``workflow`` are
        the envelope's version-5 fields."""
        from cloudq.options import SendOptions, resolve_queue  # sending only: not at import (issue 14)

        if options is None:
            options = SendOptions()
        args, kwargs = list(args), dict(kwargs or {})
        if not is_json(args) or not is_json(kwargs):
            raise ArgumentError(f"send_task({name!r}): arguments must be JSON values; pass ids")
        now = self.app.clock.time() if now is None else now
        run_at = options.run_at(now)
        try:
            message = Message(
                id=options.task_id or new_task_id(),
                task=name,
                args=args,
                kwargs=kwargs,
                eta=run_at,
                expires=options.expires_at(),
                **{key: value for key, value in workflow.items() if value},
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ArgumentError(f"send_task({name!r}): {where}: {first['msg']}") from None
        registered = self.app.tasks.get(name)
        target = resolve_queue(options, registered.queue if registered else None, self.app.settings)
        _check_protocol(options.protocol, target, self.app.codec.is_celery(target))
        priority = options.priority
        if priority is None and registered is not None:
            priority = registered.flow.priority  # the task's default lane
        target = self._lane(target, priority)
        if run_at is not None and is_fifo(target):
            # SQS does not delay single messages of a FIFO queue, and re-sending one to wait
            # would break its order (and could be dropped by content deduplication).
            raise ArgumentError(
                f"queue {target!r} is a FIFO queue: SQS cannot delay one of its messages; "
                "send delayed tasks to a standard queue"
            )
        return Outgoing(message, target, options.message_group_id, options.deduplication_id)

    def _lane(self, queue: str, priority: str | int | None) -> str:
        """The queue of ``priority``'s lane of ``queue``; a lane the app does not declare is
        refused (nothing would create or poll it)."""
        lane = check_priority(priority)
        if lane is None:
            return queue
        if queue not in self.app.laned_queues():
            raise ArgumentError(
                f"queue {queue!r} has no {lane} priority lane: add it to the priority_queues setting "
                f"(CLOUDQ_PRIORITY_QUEUES), or declare a task on it with priority={lane!r}, then "
                "deploy the lane (cloudq infra render / cloudq emulator up)"
            )
        return lane_queue_name(queue, lane)

    def send(self, messages: Sequence[Outgoing], *, now: float | None = None) -> list[SendResult]:
        """Send many envelopes, batched per queue by the transport (SQS: 10 per call); one
        ``SendResult`` per envelope, in order. Every body is encoded before anything is sent."""
        transport = self.app.transport
        now = self.app.clock.time() if now is None else now
        bodies: list[OutgoingMessage] = []
        for out in messages:
            delay = 0
            # A Celery queue gets messages as Celery sends them: the eta in the message, no
            # broker delay (a Celery worker holds it; a cloudq worker hops it).
            if out.message.eta is not None and not self.app.codec.is_celery(out.queue):
                # Whole seconds on every broker: rounded up, so the task never arrives early.
                delay = min(math.ceil(max(out.message.eta - now, 0)), transport.max_delay_seconds)
            group = out.message_group_id or _group(out.queue)
            body = self.app.encode(out.message, out.queue)
            bodies.append(OutgoingMessage(body, delay, group_id=group, deduplication_id=out.deduplication_id))
        if len({out.queue for out in messages}) == 1:  # one queue (a single send, most often)
            return list(transport.send(messages[0].queue, bodies))
        by_queue: dict[str, list[int]] = {}
        for index, out in enumerate(messages):
            by_queue.setdefault(out.queue, []).append(index)
        results: list[SendResult] = [SendResult(error="not sent")] * len(messages)
        for queue, indexes in by_queue.items():
            sent = transport.send(queue, [bodies[i] for i in indexes])
            for index, result in zip(indexes, sent, strict=True):
                results[index] = result
        return results


def _check_protocol(protocol: str | None, queue: str, celery: bool) -> None:
    """A send that asks for a format its queue does not have is refused: the format of a
    queue is one setting (``celery_queues``), so that its workers read every message on it."""
    if protocol == "celery" and not celery:
        raise ConfigurationError(
            f"protocol='celery': queue {queue!r} is not one of celery_queues; add it there "
            "(CLOUDQ_CELERY_QUEUES) so that it keeps Celery's name and every send to it is "
            "in Celery's format"
        )
    if protocol == "cloudq" and celery:
        raise ConfigurationError(
            f"protocol='cloudq': queue {queue!r} is one of celery_queues, whose messages are "
            "Celery's (Celery's workers read them); send to another queue"
        )


def _group(queue: str) -> str | None:
    # FIFO queues need a message group; one group per queue keeps strict order by default.
    return "default" if is_fifo(queue) else None
