"""Periodic tasks and schedules made at run time: AWS's expressions, and when they tick.

A schedule is what EventBridge Scheduler takes — ``rate(5 minutes)``, ``cron(0 12 * * ? *)``
(minutes, hours, day of month, month, day of week, year) — with a time zone, plus, for
``cloudq beat`` only, intervals in seconds (``rate(10 seconds)`` or a number): Scheduler's
finest rate is one minute, so ``cloudq infra render`` refuses them.

A one-off ``at(datetime)`` (``at()`` below; run-time schedules only) ticks once, at that
second, and is kept in UTC (EventBridge Scheduler's ``at(yyyy-mm-ddThh:mm:ss)``).

Ticks of a rate are aligned to the epoch (every 300 s: at multiples of 300 s), so every beat
process agrees on which tick is which; a cron ticks at the minutes it names, in its time zone.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cloudq.core.errors import ConfigurationError

AT = re.compile(r"^at\((\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\)$")
RATE = re.compile(r"^rate\((\d+)\s+(second|seconds|minute|minutes|hour|hours|day|days)\)$")
CRON = re.compile(r"^cron\((.+)\)$")
UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
#: EventBridge Scheduler's finest rate.
AWS_MIN_RATE_SECONDS = 60
MONTHS = {
    name: number for number, name in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), 1)
}
#: AWS numbers days of the week 1-7 from Sunday.
WEEKDAYS = {name: number for number, name in enumerate("SUN MON TUE WED THU FRI SAT".split(), 1)}
#: (low, high, names) of the six cron fields.
CRON_FIELDS: list[tuple[str, int, int, dict[str, int]]] = [
    ("minutes", 0, 59, {}),
    ("hours", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, MONTHS),
    ("day-of-week", 1, 7, WEEKDAYS),
    ("year", 1970, 2199, {}),
]
#: How far ahead a cron's next tick is looked for.
CRON_SEARCH_DAYS = 366 * 4


def _values(text: str, low: int, high: int, names: dict[str, int], what: str) -> set[int] | None:
    """The values a cron field allows; ``None`` for ``*`` and ``?`` (any)."""
    if text in ("*", "?"):
        return None
    found: set[int] = set()
    for part in text.split(","):
        if re.search(r"[LW#]", part.upper()):
            raise ConfigurationError(
                f"cron field {what} {part!r}: L, W and # are for EventBridge Scheduler only "
                "(cloudq beat does not evaluate them)"
            )
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() else 1
        if step_text and not step_text.isdigit():
            raise ConfigurationError(f"cron field {what} {part!r}: the step must be a number")
        if span == "*":
            start, end = low, high
        else:
            first, _, last = span.partition("-")
            start = _number(first, names, what)
            end = _number(last, names, what) if last else (high if step_text else start)
        if not low <= start <= end <= high:
            raise ConfigurationError(f"cron field {what} {part!r}: out of range {low}-{high}")
        found.update(range(start, end + 1, step))
    return found


def _number(text: str, names: dict[str, int], what: str) -> int:
    if text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        raise ConfigurationError(f"cron field {what}: {text!r} is not a number or a name")
    return int(text)


@dataclass(frozen=True)
class Schedule:
    """When a periodic task runs: an AWS schedule expression (or seconds) in a time zone."""

    expression: str
    timezone: str = "UTC"
    #: For a rate: seconds between ticks.
    interval_seconds: int | None = None
    #: For a cron: the allowed values of each field (``None``: any), and a reason it cannot
    #: run under ``cloudq beat`` (L, W, #), if any.
    cron_fields: tuple[set[int] | None, ...] = field(default=(), compare=False)
    beat_error: str | None = field(default=None, compare=False)
    #: For ``at(…)``: its one tick (epoch seconds).
    at_seconds: float | None = None

    @property
    def one_off(self) -> bool:
        """An ``at(…)`` schedule: it fires once, then is deleted."""
        return self.at_seconds is not None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def aws_expression(self) -> str:
        """The expression for EventBridge Scheduler; ``ConfigurationError`` for seconds."""
        if self.interval_seconds is not None and self.interval_seconds < AWS_MIN_RATE_SECONDS:
            raise ConfigurationError(
                f"schedule {self.expression!r} ticks every {self.interval_seconds} s, but EventBridge "
                "Scheduler's finest rate is rate(1 minute): use minutes for AWS, or run it with "
                "'cloudq beat' (and leave it out of the app infra render deploys)"
            )
        return self.expression

    def next_after(self, moment: float) -> float:
        """The first tick strictly after ``moment`` (epoch seconds); ``math.inf`` for none
        (an ``at()`` whose moment has passed)."""
        if self.at_seconds is not None:
            return self.at_seconds if self.at_seconds > moment else math.inf
        if self.interval_seconds is not None:
            return (math.floor(moment / self.interval_seconds) + 1) * float(self.interval_seconds)
        if self.beat_error:
            raise ConfigurationError(self.beat_error)
        return self._next_cron(moment)

    def _next_cron(self, moment: float) -> float:
        minutes, hours, days, months, weekdays, years = self.cron_fields
        zone = self.zone
        start = dt.datetime.fromtimestamp(moment, zone).replace(second=0, microsecond=0)
        for offset in range(CRON_SEARCH_DAYS):
            day = (start + dt.timedelta(days=offset)).date()
            aws_weekday = day.isoweekday() % 7 + 1  # Sunday is 1
            if not all(
                allowed is None or value in allowed
                for allowed, value in ((days, day.day), (months, day.month), (weekdays, aws_weekday))
            ) or (years is not None and day.year not in years):
                continue
            for hour in sorted(hours) if hours is not None else range(24):
                for minute in sorted(minutes) if minutes is not None else range(60):
                    tick = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone).timestamp()
                    if tick > moment:
                        return tick
        raise ConfigurationError(f"schedule {self.expression!r} has no tick in the next four years")


@dataclass(frozen=True)
class At:
    """A one-off moment for a schedule made at run time: ``at(datetime)``."""

    moment: dt.datetime

    def expression(self, timezone: str) -> str:
        """``at(yyyy-mm-ddThh:mm:ss)`` in UTC; a naive moment is read in ``timezone``."""
        moment = self.moment if self.moment.tzinfo else self.moment.replace(tzinfo=_zone(timezone))
        return f"at({moment.astimezone(dt.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S')})"


def at(moment: dt.datetime) -> At:
    """A one-off schedule for ``app.schedules.create``: it fires once at ``moment`` (to the
    second; a naive datetime is in the schedule's ``timezone``), then is deleted."""
    if not isinstance(moment, dt.datetime):
        raise ConfigurationError(f"at({moment!r}): give a datetime")
    return At(moment)


def _zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(
            f"unknown time zone {timezone!r} (use an IANA name, e.g. Europe/Paris)"
        ) from None


def parse_schedule(value: str | float | dt.timedelta | At, timezone: str = "UTC") -> Schedule:
    """A ``Schedule`` from an expression (``rate(…)``, ``cron(…)``, ``at(…)``), ``at()``, a
    number of seconds or a ``timedelta``; ``ConfigurationError`` names what is wrong."""
    _zone(timezone)
    if isinstance(value, At):
        value = value.expression(timezone)
    one_off = AT.match(value.strip()) if isinstance(value, str) else None
    if one_off:
        moment = dt.datetime.fromisoformat(one_off.group(1)).replace(tzinfo=dt.timezone.utc)
        return Schedule(one_off.group(0), "UTC", at_seconds=moment.timestamp())
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 1 or value != int(value):
            raise ConfigurationError(f"schedule interval {value!r}: a whole number of seconds, at least 1")
        seconds = int(value)
        unit = "second" if seconds == 1 else "seconds"
        return Schedule(f"rate({seconds} {unit})", timezone, interval_seconds=seconds)
    if not isinstance(value, str):
        raise ConfigurationError(
            f"schedule {value!r}: use 'rate(5 minutes)', 'cron(0 12 * * ? *)' or seconds"
        )
    text = value.strip()
    rate = RATE.match(text)
    if rate:
        count, unit = int(rate.group(1)), rate.group(2)
        if count < 1 or (count == 1) != (not unit.endswith("s")):
            raise ConfigurationError(
                f"schedule {text!r}: AWS writes 'rate(1 minute)' with one, 'rate(5 minutes)' with more"
            )
        return Schedule(text, timezone, interval_seconds=count * UNIT_SECONDS[unit.rstrip("s")])
    cron = CRON.match(text)
    if cron:
        return _cron(text, cron.group(1).split(), timezone)
    raise ConfigurationError(
        f"schedule {value!r}: use 'rate(5 minutes)', 'cron(0 12 * * ? *)' (AWS expressions) or seconds"
    )


def _cron(text: str, parts: list[str], timezone: str) -> Schedule:
    if len(parts) != 6:
        raise ConfigurationError(
            f"schedule {text!r}: AWS cron has six fields (minutes hours day-of-month month day-of-week year)"
        )
    if "?" not in (parts[2], parts[4]) or parts[2] == parts[4]:
        raise ConfigurationError(f"schedule {text!r}: one of day-of-month and day-of-week must be '?' (AWS)")
    fields: list[set[int] | None] = []
    try:
        for part, (what, low, high, names) in zip(parts, CRON_FIELDS, strict=True):
            fields.append(_values(part, low, high, names, what))
    except ConfigurationError as exc:
        if "EventBridge Scheduler only" not in str(exc):
            raise ConfigurationError(f"schedule {text!r}: {exc}") from None
        return Schedule(text, timezone, beat_error=f"schedule {text!r}: {exc}")
    return Schedule(text, timezone, cron_fields=tuple(fields))


@dataclass(frozen=True)
class PeriodicTask:
    """A task sent on a schedule with fixed (JSON) arguments."""

    name: str
    task: str
    queue: str
    schedule: Schedule
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)

    def task_id(self, tick: float) -> str:
        """The task id of one tick (``cloudq beat``): the same in every beat process, so a
        tick sent twice (a beat died between sending and recording it) runs once."""
        return f"{self.name}@{int(tick)}"


#: The fields of a run-time schedule's stored definition (``definition_json``).
DEFINITION_FIELDS = ("task", "queue", "expression", "timezone", "args", "kwargs")


def definition_json(periodic: PeriodicTask) -> str:
    """A run-time schedule as the JSON its store keeps (the result backend's schedules)."""
    schedule = periodic.schedule
    fields = [periodic.task, periodic.queue, schedule.expression, schedule.timezone]
    values = dict(zip(DEFINITION_FIELDS, [*fields, periodic.args, periodic.kwargs], strict=True))
    return json.dumps(values, sort_keys=True, separators=(",", ":"))


def from_definition(name: str, text: str) -> PeriodicTask:
    """The schedule ``definition_json`` wrote; ``ConfigurationError`` for one it did not."""
    try:
        values = json.loads(text)
        schedule = parse_schedule(values["expression"], values["timezone"])
        return PeriodicTask(name, values["task"], values["queue"], schedule, values["args"], values["kwargs"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(f"schedule {name!r}: its stored definition is unreadable ({exc})") from None
