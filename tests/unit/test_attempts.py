"""What counts as an attempt (``cloudq.runtime.attempts``): each rule, on plain values.

No broker, no threads, no sleeps: a delivery is a ``Message`` and the ``ReceivedMessage`` that
carried it.
"""

from __future__ import annotations

from cloudq.core.message import Message
from cloudq.runtime.attempts import Attempts
from cloudq.transports.base import ReceivedMessage


def delivery(receive_count: int = 1, retries: int = 0, attempt_base: int | None = None) -> Attempts:
    """The attempts of a delivery: the message's ``receive_count``-th receive."""
    message = Message(task="add", retries=retries, attempt_base=attempt_base)
    received = ReceivedMessage("default", "m1", "r1", body="{}", receive_count=receive_count)
    return Attempts.of_delivery(message, received)


def test_the_first_delivery_is_the_first_attempt() -> None:
    # Given a message received for the first time
    # When its attempts are counted
    attempts = delivery(receive_count=1)
    # Then it is attempt 1, and the record counts one run
    assert attempts.number == 1
    assert attempts.recorded == 1


def test_without_a_claim_each_receive_of_the_same_message_is_an_attempt() -> None:
    # Given a message retried in place (its visibility changed), received a third time
    # When its attempts are counted
    attempts = delivery(receive_count=3)
    # Then the receive count stands in for attempts
    assert attempts.number == 3


def test_a_re_sent_message_carries_the_attempts_already_made() -> None:
    # Given a delivery of attempt 2 whose retry is longer than the broker's delay limit
    second = delivery(receive_count=2)
    # When it is re-sent, and the new message is received for the first time
    resent = delivery(receive_count=1, retries=second.for_resend())
    # Then the new message's first delivery is attempt 3
    assert second.for_resend() == 2
    assert resent.number == 3


def test_a_hop_is_not_an_attempt() -> None:
    # Given attempt 3 (one retry re-sent, received twice) that came before its eta
    early = delivery(receive_count=2, retries=1)
    assert early.number == 3
    # When it hops (re-sent to wait), and the hop is received
    hopped = delivery(receive_count=1, retries=early.for_hop())
    # Then the delivery after the hop is still attempt 3: the early one did not count
    assert hopped.number == 3


def test_the_claim_counts_runs_and_not_deliveries_handed_back() -> None:
    # Given a message received five times: three deliveries were handed back unstarted
    attempts = delivery(receive_count=5)
    # When the claim counts two runs started (the record's attempts after this claim)
    claimed = attempts.claimed(record_attempts=2)
    # Then this run is attempt 2
    assert claimed.number == 2
    assert claimed.recorded == 2


def test_a_replayed_message_starts_a_new_life_over_its_base() -> None:
    # Given a message replayed from the dead-letter queue after 4 attempts (its base)
    attempts = delivery(receive_count=1, attempt_base=4)
    # When its first delivery is counted, then claimed (the record counts a 5th run)
    claimed = attempts.claimed(record_attempts=5)
    # Then it is attempt 1 of its new life, and the record counts every run of the task id
    assert attempts.number == 1 and claimed.number == 1
    assert claimed.recorded == 5
    assert not claimed.exhausted(max_retries=0)


def test_the_budget_is_the_first_run_and_max_retries_retries() -> None:
    # Given a task with max_retries=2: three runs in all
    max_retries = 2
    # When deliveries of attempts 1 to 4 are counted
    numbers = {n: delivery(receive_count=n) for n in range(1, 5)}
    # Then attempts 1 and 2 may be retried, 3 may run but not be retried, and 4 is past the budget
    assert [n for n, a in numbers.items() if a.may_retry(max_retries)] == [1, 2]
    assert [n for n, a in numbers.items() if a.exhausted(max_retries)] == [4]


def test_a_delivery_that_gives_up_counts_only_the_runs_before_it() -> None:
    # Given the claim of attempt 4 of a task with max_retries=2, replayed once after 3 attempts
    attempts = delivery(receive_count=1, attempt_base=3).claimed(record_attempts=7)
    assert attempts.exhausted(max_retries=2)
    # When it gives up without running
    ran = attempts.before()
    # Then 3 runs of this life ended, 6 in the record, and the delivery holds the record's 7th
    assert ran.number == 3
    assert ran.recorded == 6
    assert attempts.recorded == 7


def test_an_end_without_a_run_is_attempt_zero_over_the_base() -> None:
    # Given a replayed message (base 2) that expired before it could run
    attempts = delivery(receive_count=1, attempt_base=2)
    # When its end is counted
    none = attempts.not_run()
    # Then it is no attempt, and the record keeps the earlier lives' runs
    assert none.number == 0
    assert none.recorded == 2
