"""The ``cloudq`` command line. Thin: parse, call, print; one module per command group.

Exit codes: 0 success, 1 a task failed, 2 a usage or configuration error. A user mistake is
one line on stderr, no traceback (``--debug`` shows it).
"""

from cloudq.cli import (  # noqa: F401 - registers the commands
    beat,
    dashboard,
    demo,
    dlq,
    infra,
    results,
    schedules,
    status,
    worker,
)
from cloudq.cli.root import friendly_errors, main

__all__ = ["friendly_errors", "main"]
