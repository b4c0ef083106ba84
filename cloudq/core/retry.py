"""The retry policy: how a task is retried, and every retry default, written once here (the
app's settings, the task decorator and ``Task`` all start from ``RetryPolicy()``)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """How a task is retried. One policy object; the executor is its only reader."""

    max_retries: int = 3
    #: ``True``: exponential backoff from ``retry_delay``; ``False``: a constant ``retry_delay``.
    retry_backoff: bool = True
    retry_delay: float = 1.0
    retry_backoff_max: float = 600.0
    retry_jitter: bool = True
    #: Exceptions retried automatically. Others fail at once (FAILURE, then the DLQ).
    autoretry_for: tuple[type[BaseException], ...] = (Exception,)

    def delay_for(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        delay = self.retry_delay * (2 ** (attempt - 1) if self.retry_backoff else 1)
        delay = min(delay, self.retry_backoff_max)
        if self.retry_jitter:
            # "Equal jitter": spread retries of a burst of failures over [delay/2, delay].
            delay = (rng or random).uniform(delay / 2, delay)
        return delay

    def retries(self, exc: BaseException) -> bool:
        return isinstance(exc, self.autoretry_for)


#: The defaults of a task that sets nothing (``Settings`` reads its defaults from here).
DEFAULT_RETRY_POLICY = RetryPolicy()
