"""What counts as an attempt: every attempt computation of the executor, written once.

An attempt is a run of the task that started. Its number, within a *life* of the task id,
is 1 for the first run; a task may run ``max_retries + 1`` times in a life.

- With a result backend that claims (``task.deduplicate``), the claim counts: each claim adds
  one to the record's ``attempts``, so a run cut off by a crash counts, and a delivery handed
  back unstarted (graceful shutdown, a Lambda deadline, a held FIFO group) does not.
- Without a claim, a retry changes the visibility of the *same* broker message, so its receive
  count stands in for attempts. A message re-sent instead (a retry longer than the broker's
  delay limit) carries the attempts already made in ``Message.retries``: the delivery's
  number is ``retries + receive_count``.
- A hop (a message re-sent only to wait for its eta) is not an attempt: the delivery that hops
  did not run, so the re-sent message carries one attempt fewer than the delivery's number.
- A message replayed from the dead-letter queue starts a new life with its whole retry budget:
  the attempts spent before its replay are its *base* (``Message.attempt_base``). The result
  record counts every run of the task id, so it holds ``base + number``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cloudq.core.message import Message
    from cloudq.transports.base import ReceivedMessage


@dataclass(frozen=True)
class Attempts:
    """The attempts of one delivery of a task's message. No I/O; every method is a rule."""

    #: The attempt of this run within its life (1 for the first); 0 when the task did not run.
    number: int
    #: The broker's count for this delivery: ``Message.retries`` + the receive count.
    delivered: int
    #: Attempts of the task id's earlier lives, before its replay from the dead-letter queue.
    base: int = 0

    @classmethod
    def of_delivery(cls, message: Message, received: ReceivedMessage) -> Attempts:
        """The attempts as the broker counts them: the retries a re-sent message carries plus
        the receive count of this broker message (every delivery of it, this one included)."""
        delivered = message.retries + received.receive_count
        return cls(number=delivered, delivered=delivered, base=message.attempt_base or 0)

    def claimed(self, record_attempts: int) -> Attempts:
        """The attempts as a claim counts them: the record's ``attempts`` after this delivery's
        claim (runs that started, crashes included, in every life) less this life's base."""
        return replace(self, number=record_attempts - self.base)

    def not_run(self) -> Attempts:
        """These attempts for an end reached without running the task (it expired): number 0."""
        return replace(self, number=0)

    def before(self) -> Attempts:
        """The attempts that ended before this one: a delivery that gives up does not run, so
        the runs that count are those before it."""
        return replace(self, number=self.number - 1)

    def exhausted(self, max_retries: int) -> bool:
        """Whether this delivery would run past the budget: the first run and ``max_retries``
        retries have all started (earlier runs ended without an outcome: a crash, an overrun)."""
        return self.number > max_retries + 1

    def may_retry(self, max_retries: int) -> bool:
        """Whether a run that failed with this number may be retried: ``max_retries`` retries
        follow the first run."""
        return self.number <= max_retries

    @property
    def recorded(self) -> int:
        """The attempts the result record holds: every run of the task id, earlier lives too."""
        return self.number + self.base

    def for_hop(self) -> int:
        """``Message.retries`` of the message re-sent to wait for its eta: this delivery did not
        run, so it does not count; the next delivery of the new message is the same attempt."""
        return self.delivered - 1

    def for_resend(self) -> int:
        """``Message.retries`` of the message re-sent for a retry longer than the broker's delay
        limit: the attempts made so far, this one included."""
        return self.delivered
