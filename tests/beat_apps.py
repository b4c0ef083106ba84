"""Apps that ``cloudq beat`` refuses at start (the CLI tests load them by reference)."""

from __future__ import annotations

from cloudq import CloudQ

no_backend = CloudQ("beatless", broker="memory://", backend=None)


@no_backend.periodic("rate(1 minute)")
@no_backend.task
def tidy() -> None:
    return None


no_periodic = CloudQ("idle", broker="memory://", backend="memory://")
