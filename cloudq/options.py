"""The options of one send and of one worker, each one typed object, checked once, here.

- ``SendOptions``: how one task call is sent (``task.apply_async(countdown=…)``,
  ``app.send_task``, ``signature.set``, ``task.map``). The keyword options of those calls build
  it; the layers below (``CloudQ.outgoing``) take the object.
- ``WorkerOptions``: what a worker is asked to do (``Worker(app, concurrency=8)``,
  ``cloudq worker -c 8``, each process of ``--processes``).

Neither reads settings: an unset field (``None``) is filled from the app's settings by the
resolvers at the end of this module (``resolve_queue``, ``resolve_worker_options``), the one
place options meet settings (``cloudq.core.config`` resolves the settings themselves).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from cloudq.core.celery_options import from_celery_settings as from_celery_settings  # public here
from cloudq.core.config import MAX_WAIT_SECONDS, WORKER_CONCURRENCY, WORKER_GRACE_SECONDS
from cloudq.core.errors import ArgumentError, ConfigurationError
from cloudq.core.flow import LanePolicy, check_priority
from cloudq.core.naming import DEFAULT_VISIBILITY_TIMEOUT

if TYPE_CHECKING:
    from cloudq.core.config import Settings
    from cloudq.transports.base import Transport

#: A point in time: a timezone-aware datetime or epoch seconds.
When = dt.datetime | float


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _epoch(value: When | None) -> float | None:
    return value.timestamp() if isinstance(value, dt.datetime) else value


#: The message formats a send may ask for (``SendOptions.protocol``).
PROTOCOLS = ("cloudq", "celery")


@dataclass(frozen=True)
class SendOptions:
    """How one task call is sent. Every field is optional; ``None`` is "not asked for".

    ``countdown`` (seconds) or ``eta`` delays it (``eta`` wins when both are given), ``expires``
    drops it unrun after that time, ``queue`` overrides the task's route, ``task_id`` chooses
    the id (the idempotency key), ``message_group_id`` is SQS's ordering unit on a FIFO queue
    (a fair-queue tenant on a standard one) and ``deduplication_id`` a FIFO queue's
    deduplication id. ``protocol="celery"`` asks for Celery's format (what every send to a
    queue of ``celery_queues`` is in). ``priority="high"`` sends it to the queue's high lane
    (``"default"``: the queue itself; ``None``: the task's own ``priority``); Celery's
    integer priority maps to a lane (``cloudq.core.flow.check_priority``).
    """

    countdown: float | None = None
    eta: When | None = None
    expires: When | None = None
    queue: str | None = None
    task_id: str | None = None
    message_group_id: str | None = None
    deduplication_id: str | None = None
    #: The message format: ``"celery"`` (Celery's task protocol 2) or ``"cloudq"``; checked
    #: against the queue, whose format ``celery_queues`` decides. ``None``: the queue's.
    protocol: str | None = None
    #: The lane: ``"high"``, ``"default"``, Celery's integer (0-255), or ``None``.
    priority: str | int | None = None

    def __post_init__(self) -> None:
        check_priority(self.priority)  # a clear error at send time, before anything is sent
        if self.protocol not in (None, *PROTOCOLS):
            raise ArgumentError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {self.protocol!r}")
        if self.countdown is not None and not _is_number(self.countdown):
            raise ArgumentError(f"countdown must be a number of seconds, not {type(self.countdown).__name__}")
        for name in ("eta", "expires"):
            value = getattr(self, name)
            if isinstance(value, dt.datetime):
                if value.tzinfo is None:
                    raise ConfigurationError("eta/expires datetimes must be timezone-aware (use UTC)")
            elif value is not None and not _is_number(value):
                raise ArgumentError(f"{name} must be a datetime or epoch seconds, not {type(value).__name__}")
        for name in ("queue", "task_id", "message_group_id", "deduplication_id", "protocol"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ArgumentError(f"{name} must be a string, not {type(value).__name__}")

    @classmethod
    def names(cls) -> frozenset[str]:
        return frozenset(field.name for field in fields(cls))

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> SendOptions:
        """From keyword options (``task.map(items, countdown=5)``); an unknown name is an
        ``ArgumentError`` naming it."""
        unknown = set(options) - cls.names()
        if unknown:
            raise ArgumentError(f"unknown send option(s): {', '.join(sorted(unknown))}")
        return cls(**options)

    def run_at(self, now: float) -> float | None:
        """Epoch seconds when the task may run: ``eta``, else ``now + countdown``; ``None``: now."""
        if self.eta is not None:
            return _epoch(self.eta)
        return now + self.countdown if self.countdown else None

    def expires_at(self) -> float | None:
        """Epoch seconds after which the task is dropped unrun, or ``None``."""
        return _epoch(self.expires)


@dataclass(frozen=True)
class WorkerOptions:
    """What one worker process is asked to do. ``None`` fields come from the app's settings
    (``resolve_worker_options``)."""

    #: Logical queues to consume; empty: every queue of the app.
    queues: tuple[str, ...] = ()
    #: Tasks run at once (threads).
    concurrency: int = WORKER_CONCURRENCY
    #: Seconds a received message stays hidden (the heartbeat extends it); ``None``: the
    #: ``visibility_timeout`` setting, else the queues' default.
    visibility_timeout: int | None = None
    #: Long-poll wait of a receive; ``None``: the ``wait_seconds`` setting.
    wait_seconds: float | None = None
    #: Seconds running tasks get to finish once the worker is asked to stop.
    grace: float = WORKER_GRACE_SECONDS
    #: How threads pick between priority lanes (``strict``, ``weighted:H:L``); ``None``: the
    #: ``lanes`` setting.
    lanes: str | None = None

    def __post_init__(self) -> None:
        if self.lanes is not None:
            LanePolicy.parse(self.lanes)
        queues_ok = not isinstance(self.queues, str) and all(isinstance(q, str) and q for q in self.queues)
        concurrency, visibility, wait = self.concurrency, self.visibility_timeout, self.wait_seconds
        checks = [
            (queues_ok, "queues must be a list of queue names"),
            (
                _is_whole(concurrency) and concurrency >= 1,
                f"concurrency must be at least 1, not {concurrency!r}",
            ),
            (
                visibility is None or (_is_whole(visibility) and visibility >= 1),
                f"visibility_timeout must be whole seconds, at least 1, not {visibility!r}",
            ),
            (
                wait is None or (_is_number(wait) and 0 <= wait <= MAX_WAIT_SECONDS),
                f"wait_seconds must be between 0 and {MAX_WAIT_SECONDS:g} (the SQS long-poll limit), "
                f"not {wait!r}",
            ),
            (
                _is_number(self.grace) and self.grace >= 0,
                f"grace must be 0 seconds or more, not {self.grace!r}",
            ),
        ]
        for ok, problem in checks:
            if not ok:
                raise ConfigurationError(f"worker option {problem}")

    @classmethod
    def build(
        cls,
        queues: Sequence[str] | None = None,
        *,
        concurrency: int = WORKER_CONCURRENCY,
        visibility_timeout: int | None = None,
        wait_seconds: float | None = None,
        grace: float = WORKER_GRACE_SECONDS,
        lanes: str | None = None,
    ) -> WorkerOptions:
        """From the keyword options of ``Worker`` and ``cloudq worker``, as ``Worker`` always
        took them: a concurrency below 1 is 1, a visibility timeout of 0 is not set."""
        if isinstance(queues, str):
            raise ConfigurationError("worker queues must be a list of queue names, not one string")
        return cls(
            tuple(queues or ()),
            max(1, concurrency) if isinstance(concurrency, int) else concurrency,
            visibility_timeout or None,  # 0 always meant "not set"
            wait_seconds,
            grace,
            lanes,
        )


@dataclass(frozen=True)
class ResolvedWorkerOptions:
    """``WorkerOptions`` with the settings applied: what the worker runs with."""

    queues: tuple[str, ...]
    concurrency: int
    visibility_timeout: int
    wait_seconds: float
    grace: float
    lanes: LanePolicy


# -- the options against the settings ----------------------------------------------------


def resolve_queue(options: SendOptions, routed: str | None, settings: Settings) -> str:
    """Where a send goes: the ``queue`` option, then the task's route, then ``default_queue``."""
    return options.queue or routed or settings.default_queue


def resolve_worker_options(
    options: WorkerOptions, settings: Settings, transport: Transport
) -> ResolvedWorkerOptions:
    """Argument over setting over default: ``visibility_timeout`` (then the setting, then the
    queues' default, ``DEFAULT_VISIBILITY_TIMEOUT``) and ``wait_seconds`` (then the setting).
    A visibility timeout past the broker's ``max_visibility_seconds`` is refused where the
    broker has visibility timeouts (elsewhere it has no effect)."""
    visibility = options.visibility_timeout or settings.visibility_timeout or DEFAULT_VISIBILITY_TIMEOUT
    ceiling = transport.max_visibility_seconds
    if transport.visibility_timeouts and visibility > ceiling:
        raise ConfigurationError(
            f"visibility timeout {visibility} s is past the broker's limit of {ceiling} s "
            f"({transport.describe()})"
        )
    return ResolvedWorkerOptions(
        queues=options.queues,
        concurrency=options.concurrency,
        visibility_timeout=visibility,
        wait_seconds=settings.wait_seconds if options.wait_seconds is None else options.wait_seconds,
        grace=options.grace,
        lanes=LanePolicy.parse(options.lanes or settings.lanes),
    )
