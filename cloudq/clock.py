"""``cloudq.clock``: the injectable clock (``cloudq.core.clock``), by the path users import."""

from cloudq.core.clock import SYSTEM_CLOCK, Clock, ManualClock, SystemClock

__all__ = ["SYSTEM_CLOCK", "Clock", "ManualClock", "SystemClock"]
