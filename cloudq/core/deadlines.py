"""The time a task needs in a Lambda invocation: the handler (``cloudq.aws_lambda``) starts a
record only with this much of the invocation left, and the deploy model (``cloudq.infra``)
refuses a ``lambda_timeout`` below it. One owner for both, so the deploy side need not import
the handler."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cloudq.app.task import Task

#: Seconds kept in hand after a task's timeout before the function's deadline.
DEADLINE_MARGIN_SECONDS = 1.0
#: Tasks without a ``timeout`` are assumed to need this long.
UNTIMED_TASK_SECONDS = 1.0


def seconds_needed(task: Task[Any, Any]) -> float:
    """The time left in an invocation that a record of ``task`` needs to be started."""
    return (task.timeout or UNTIMED_TASK_SECONDS) + DEADLINE_MARGIN_SECONDS
