"""The long-polling worker (EC2, ECS, a laptop): ``Worker`` and its ``WorkerStats``.

Its parts live in ``cloudq.runtime`` (the ledger, the receivers and their pace, the acker,
the heartbeat); this module is the import path users and the docs name.
"""

from cloudq.runtime.worker import Worker, WorkerStats

__all__ = ["Worker", "WorkerStats"]
