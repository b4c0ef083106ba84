"""A task's flow-control options, checked once at ``@app.task``: its rate limit and its
concurrency cap, each optionally per key.

- ``rate_limit="100/m"`` (``/s``, ``/m``, ``/h``): at most that many runs per unit across
  every worker and the Lambda function, as a bucket of ``rate_burst`` tokens (default 1:
  runs are spread evenly, one every ``interval``) in the result backend.
- ``max_concurrency=N``: at most N runs at once, as leases in the result backend.
- ``soft_timeout=N``: the run's deadline, N seconds after it starts, which the task reads
  (``Request.deadline`` / ``remaining()``); the hard ``timeout`` stays as it is.
- ``rate_key=`` / ``concurrency_key=``: a parameter name, or a function of the task's
  arguments, whose value picks a bucket (a cap) of its own, e.g. one per customer.

- ``priority="high"`` (a task's default, or ``apply_async(priority=…)``): sent to the
  queue's high lane (``cloudq.core.naming.lane_queue_name``); a worker picks between its
  lanes by its ``LanePolicy``.

The rules themselves are the backend's (``cloudq.backends.flow``); the executor's
``cloudq.runtime.flow`` applies them to a message.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cloudq.core.arguments import Arguments
from cloudq.core.errors import ArgumentError, ConfigurationError, TaskRegistrationError
from cloudq.core.naming import DEFAULT_LANE, HIGH_LANE, LANES

#: The units of a rate limit, in seconds.
RATE_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}

#: A key option: a parameter name, or a function of the task's arguments.
KeySpec = str | Callable[..., Any]


@dataclass(frozen=True)
class Rate:
    """``count`` runs per ``per_seconds``."""

    count: float
    per_seconds: float

    @property
    def interval(self) -> float:
        """Seconds between two runs at this rate (one token refills)."""
        return self.per_seconds / self.count

    @classmethod
    def parse(cls, text: str) -> Rate:
        """``"100/m"`` → 100 per 60 s; anything else is a ``TaskRegistrationError``."""
        count, _, unit = str(text).partition("/")
        try:
            number = float(count)
        except ValueError:
            number = 0.0
        if unit not in RATE_UNITS or not number > 0:
            raise TaskRegistrationError(f"rate_limit {text!r}: write it as N/s, N/m or N/h, N above 0")
        return cls(number, RATE_UNITS[unit])


@dataclass(frozen=True)
class FlowOptions:
    """A task's flow-control options (all unset: no flow control, no backend call)."""

    rate: Rate | None = None
    rate_key: KeySpec | None = None
    rate_burst: int = 1
    max_concurrency: int | None = None
    concurrency_key: KeySpec | None = None
    soft_timeout: float | None = None
    #: The lane of the task's sends unless ``apply_async(priority=…)`` says otherwise.
    priority: str | None = None

    @property
    def needs_arguments(self) -> bool:
        """Whether a key is computed from the task's arguments."""
        return self.rate_key is not None or self.concurrency_key is not None

    @classmethod
    def build(cls, arguments: Arguments, options: dict[str, Any]) -> FlowOptions:
        """Take the flow options out of ``@app.task``'s ``options``, checked against the
        task's ``arguments`` (its signature is read only for a key that names a parameter)."""
        rate_text = options.pop("rate_limit", None)
        flow = cls(
            rate=None if rate_text is None else Rate.parse(rate_text),
            rate_key=options.pop("rate_key", None),
            rate_burst=options.pop("rate_burst", 1),
            max_concurrency=options.pop("max_concurrency", None),
            concurrency_key=options.pop("concurrency_key", None),
            soft_timeout=options.pop("soft_timeout", None),
            priority=_task_priority(options.pop("priority", None)),
        )
        flow._check(arguments)
        return flow

    def _check(self, arguments: Arguments) -> None:
        soft = self.soft_timeout
        if soft is not None and (isinstance(soft, bool) or not isinstance(soft, int | float) or not soft > 0):
            raise TaskRegistrationError(f"soft_timeout must be a number of seconds above 0, not {soft!r}")
        for name, value in (("rate_burst", self.rate_burst), ("max_concurrency", self.max_concurrency)):
            whole = isinstance(value, int) and not isinstance(value, bool)
            if value is not None and not (whole and value >= 1):
                raise TaskRegistrationError(f"{name} must be a whole number of at least 1, not {value!r}")
        for name, spec, limit, needs in (
            ("rate_key", self.rate_key, "rate_limit", self.rate),
            ("concurrency_key", self.concurrency_key, "max_concurrency", self.max_concurrency),
        ):
            if spec is None:
                continue
            if needs is None:
                raise TaskRegistrationError(f"{name} is a key of {limit}: set {limit} as well")
            if isinstance(spec, str) and spec not in arguments.signature.parameters:
                raise TaskRegistrationError(f"{name} {spec!r} is not a parameter of the task")
            if not isinstance(spec, str) and not callable(spec):
                raise TaskRegistrationError(f"{name} must be a parameter name or a function")


def _task_priority(priority: object) -> str | None:
    try:
        return check_priority(priority)
    except ArgumentError as exc:
        raise TaskRegistrationError(str(exc)) from None


def flow_key(
    task_name: str,
    spec: KeySpec | None,
    signature: inspect.Signature,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> str:
    """The bucket (or cap) of one call: the task's name, and the key's value if it has one."""
    if spec is None:
        return task_name
    if isinstance(spec, str):
        bound = signature.bind_partial(*args, **kwargs)
        bound.apply_defaults()
        value = bound.arguments.get(spec)
    else:
        value = spec(*args, **kwargs)
    return f"{task_name}:{value}"


@dataclass(frozen=True)
class LanePolicy:
    """How task threads pick between the lanes: ``high`` runs, then ``default`` runs, while
    both wait; ``default=0``: strictly high first."""

    high: int = 1
    default: int = 0

    @classmethod
    def parse(cls, text: str) -> LanePolicy:
        """``strict`` or ``weighted:H:L`` (whole numbers of at least 1); anything else is a
        ``ConfigurationError`` that says how to write it."""
        if text == "strict":
            return cls()
        kind, _, weights = text.partition(":")
        high, _, default = weights.partition(":")
        if kind == "weighted" and high.isdigit() and default.isdigit() and min(int(high), int(default)) >= 1:
            return cls(int(high), int(default))
        raise ConfigurationError(f"lanes {text!r}: write strict or weighted:H:L (e.g. weighted:4:1)")

    def __str__(self) -> str:
        return "strict" if not self.default else f"weighted:{self.high}:{self.default}"


#: Celery's integer priority at or above which a send goes to the high lane. Read the way
#: RabbitMQ reads it (0-255, higher is more urgent; Celery's default is none, or 0).
CELERY_HIGH_PRIORITY = 5


def check_priority(priority: object) -> str | None:
    """A send's lane: ``"high"``, or ``None`` for the default lane (``"default"`` too).
    Celery's integer priority (0-255) maps to two lanes: ``CELERY_HIGH_PRIORITY`` and above
    is ``"high"``, below is the default lane. Anything else is an ``ArgumentError``."""
    if priority is None or priority == DEFAULT_LANE:
        return None
    if isinstance(priority, str) and priority in LANES:
        return priority
    if isinstance(priority, int) and not isinstance(priority, bool) and 0 <= priority <= 255:
        return HIGH_LANE if priority >= CELERY_HIGH_PRIORITY else None
    names = ", ".join(repr(lane) for lane in LANES)
    raise ArgumentError(
        f"priority must be one of {names}, an integer 0-255 (Celery's) or None, not {priority!r}"
    )
