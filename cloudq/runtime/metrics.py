"""Per-task metrics as CloudWatch Embedded Metric Format (EMF) lines: no agent, no API call.

Off by default; ``metrics=True`` (``CLOUDQ_METRICS=1``) turns them on. The executor, shared by
the worker and the Lambda handler, hands every outcome of a run to ``EmfMetrics.record``,
which writes one JSON line to stdout. CloudWatch Logs turns the line into metrics where
stdout is shipped to it (Lambda; ECS with the ``awslogs`` driver); elsewhere it is a log line.

One line per run (SUCCESS, RETRY or FAILURE; duplicates, hops and refused bodies have none):

- namespace ``cloudq``, dimensions ``App``, ``Queue``, ``Task`` (one dimension set: each set
  is billed as separate custom metrics);
- ``TaskSucceeded`` / ``TaskRetried`` / ``TaskFailed``: 1 for the outcome, 0 for the others (so
  sums over a window are counts and every series has points);
- ``TaskDuration`` (ms): the executor's handling of the message, claim and result included;
- ``QueueWaitTime`` (ms): start − enqueue (the broker's sent timestamp); for a retried message
  its earlier attempts and backoff are part of it. Left out when the broker gave no timestamp.

``cloudq status`` reads these back with GetMetricData (``cloudq.ops.cloudwatch``), and
``cloudq infra render`` adds a dashboard of them.
"""

from __future__ import annotations

import functools
import json
import sys
from typing import TYPE_CHECKING, TextIO

from cloudq.backends.base import State
from cloudq.runtime.lines import PendingLines

if TYPE_CHECKING:
    from cloudq.runtime.outcome import Outcome, Prepared

NAMESPACE = "cloudq"
DIMENSIONS = ("App", "Queue", "Task")
#: The count metric of each state a run can leave.
COUNT_METRICS = {State.SUCCESS: "TaskSucceeded", State.RETRY: "TaskRetried", State.FAILURE: "TaskFailed"}
DURATION_METRIC = "TaskDuration"
QUEUE_WAIT_METRIC = "QueueWaitTime"
MILLISECONDS = "Milliseconds"
#: Lines kept before a write even without a flush (about 40 KB).
MAX_PENDING_LINES = 100


@functools.lru_cache(maxsize=4096)
def _fixed_part(app: str, queue: str, task: str, state: State, with_wait: bool) -> str:
    """What a line holds that depends only on where it comes from and its outcome: the metric
    directive, the dimension values and the counts, up to the duration's value (built once per
    kind of line: serializing a whole document per run cost more than the rest of the line)."""
    metrics: list[dict[str, str]] = [{"Name": name, "Unit": "Count"} for name in COUNT_METRICS.values()]
    metrics.append({"Name": DURATION_METRIC, "Unit": MILLISECONDS})
    if with_wait:
        metrics.append({"Name": QUEUE_WAIT_METRIC, "Unit": MILLISECONDS})
    directive = {"Namespace": NAMESPACE, "Dimensions": [list(DIMENSIONS)], "Metrics": metrics}
    members: dict[str, object] = dict(zip(DIMENSIONS, (app, queue, task), strict=True))
    members.update({name: int(state is done) for done, name in COUNT_METRICS.items()})
    compact = (",", ":")
    return (
        f',"CloudWatchMetrics":{json.dumps([directive], separators=compact)}}},'
        f'{json.dumps(members, separators=compact)[1:-1]},"{DURATION_METRIC}":'
    )


def emf_line(
    app: str, queue: str, task: str, state: State, seconds: float, wait_ms: float | None, now_ms: int
) -> str:
    """The EMF line (JSON, no newline) of one run."""
    fixed = _fixed_part(app, queue, task, state, wait_ms is not None)
    wait = "" if wait_ms is None else f',"{QUEUE_WAIT_METRIC}":{max(0.0, wait_ms):.3f}'
    return f'{{"_aws":{{"Timestamp":{now_ms}{fixed}{seconds * 1000:.3f}{wait}}}'


class EmfMetrics:
    """Collects one EMF line per run and writes them to ``stream`` (stdout: on Lambda, a line
    printed there is a log event of its own; the logging module would prefix it and break the
    JSON) on ``flush``, or once ``MAX_PENDING_LINES`` wait.

    Not a write and a flush per line (``cloudq.runtime.lines.PendingLines``). The worker flushes with
    its batched deletes (every 50 ms) and when it stops, the Lambda handler at the end of each
    invocation (before the environment may be frozen), ``cloudq.testing.drain`` when the
    queues are empty."""

    def __init__(self, app: str, stream: TextIO | None = None) -> None:
        self.app = app
        self._stream = stream
        self._lines = PendingLines()

    def record(self, prepared: Prepared, outcome: Outcome, seconds: float, started: float) -> None:
        """``started``: epoch seconds when the executor took the message."""
        if outcome.state is None or prepared.message is None:
            return
        sent_ms = prepared.received.sent_timestamp_ms
        wait_ms = started * 1000 - sent_ms if sent_ms else None
        line = emf_line(
            self.app,
            prepared.received.queue,
            prepared.message.task,
            outcome.state,
            seconds,
            wait_ms,
            int((started + seconds) * 1000),
        )
        if self._lines.add(line) >= MAX_PENDING_LINES:
            self.flush()

    def flush(self) -> None:
        """Write the lines collected so far, and flush the stream."""
        self._lines.write_to(self._stream or sys.stdout)
