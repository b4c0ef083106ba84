"""Apps the CLI tests load by reference: ones ``cloudq beat`` refuses at start, and one with
run-time schedules in its in-process backend."""

from __future__ import annotations

from cloudq import CloudQ

no_backend = CloudQ("beatless", broker="memory://", backend=None)


@no_backend.periodic("rate(1 minute)")
@no_backend.task
def tidy() -> None:
    return None


# An SQS app keeps its run-time schedules in EventBridge Scheduler: nothing for a beat to send.
no_periodic = CloudQ("idle", broker="sqs://", backend="memory://")

# Its run-time schedules live in its (in-process) result backend: beat starts without periodic tasks.
runtime = CloudQ("runtime", broker="memory://", backend="memory://")
