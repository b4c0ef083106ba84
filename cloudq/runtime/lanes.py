"""Priority lanes on a worker: which received run a free task thread takes next.

A queue with a high lane has a sibling queue (``emails-high``: ``cloudq.core.naming``), polled
by receivers of its own (``cloudq.runtime.receivers``), which may fill the pool a batch past
its room so that a high message never waits for a receive. The buffer between receivers and
task threads keeps one line per lane, and ``LanePolicy`` (``cloudq.core.flow``) picks:

- ``strict``: a high run first whenever one waits (a steady stream of high runs can starve
  the default lane);
- ``weighted:H:L``: while both lanes wait, H high runs, then L default runs, and again: the
  default lane always moves.
"""

from __future__ import annotations

import threading
from collections import deque

from cloudq.core.flow import LanePolicy
from cloudq.core.naming import DEFAULT_LANE, HIGH_LANE, lane_of
from cloudq.transports.base import ReceivedMessage

Run = list[ReceivedMessage]


def is_high_lane(queue: str) -> bool:
    return lane_of(queue)[1] == HIGH_LANE


def is_high(run: Run) -> bool:
    """Whether ``run`` came from a high lane (a run is of one queue)."""
    return is_high_lane(run[0].queue)


class LaneBuffer:
    """Runs waiting for a task thread, by lane; ``None`` (a stop) comes after every run."""

    def __init__(self, policy: LanePolicy | None = None) -> None:
        self.policy = policy or LanePolicy()
        self._lines: dict[str, deque[Run]] = {HIGH_LANE: deque(), DEFAULT_LANE: deque()}
        self._stops = 0
        #: The lane of the current turn of the weighted order, and runs taken in it.
        self._lane, self._taken = HIGH_LANE, 0
        self._ready = threading.Condition()

    def put(self, run: Run | None) -> None:
        with self._ready:
            if run is None:
                self._stops += 1
            else:
                self._lines[HIGH_LANE if is_high(run) else DEFAULT_LANE].append(run)
            self._ready.notify()

    def get(self) -> Run | None:
        """The next run by the policy (blocks); ``None`` once no run is left and a stop is."""
        with self._ready:
            while not any(self._lines.values()) and not self._stops:
                self._ready.wait()
            if not any(self._lines.values()):
                self._stops -= 1
                return None
            return self._lines[self._pick()].popleft()

    def _pick(self) -> str:
        """Under the lock, with a run waiting: the lane to take from. Runs taken while only
        one lane waits count towards that lane's turn."""
        high, default = self._lines[HIGH_LANE], self._lines[DEFAULT_LANE]
        if not (high and default):
            lane = HIGH_LANE if high else DEFAULT_LANE
        elif not self.policy.default:
            lane = HIGH_LANE
        else:
            share = self.policy.high if self._lane == HIGH_LANE else self.policy.default
            other = DEFAULT_LANE if self._lane == HIGH_LANE else HIGH_LANE
            lane = self._lane if self._taken < share else other
        if lane != self._lane:
            self._lane, self._taken = lane, 0
        self._taken += 1
        return lane
