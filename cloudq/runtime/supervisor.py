"""``cloudq worker --processes P``: P worker processes, each with its own thread pool, watched
by a parent that kills and replaces a child that hangs.

A thread cannot be killed, so a task stuck past its time limit (or in C code holding the GIL)
can only be stopped with its process. Each child reports to the parent every second over a
pipe; the parent kills a child that stops reporting for ``silence_limit`` seconds or reports a
task past its ``timeout`` by more than ``overrun_grace`` seconds, and starts a new one. The
killed child's messages reappear after their visibility timeout and follow the retry policy.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from cloudq.options import WorkerOptions

logger = logging.getLogger("cloudq.supervisor")  # its name before the move

REPORT_SECONDS = 1.0
#: A child that has not reported for this long is hung (GIL held, deadlock) and is replaced.
SILENCE_LIMIT_SECONDS = 15.0
#: A task this long past its timeout gets its process killed.
OVERRUN_GRACE_SECONDS = 5.0


def _child_main(
    app_reference: str, options: WorkerOptions, logging_options: dict[str, Any], conn: Connection
) -> None:
    """A child process: one ordinary worker plus a reporter thread."""
    from cloudq.app.loading import load_app
    from cloudq.runtime.logs import configure_logging
    from cloudq.worker import Worker

    configure_logging(**logging_options)
    worker = Worker(load_app(app_reference), options=options)

    def report() -> None:
        while True:
            conn.send(worker.overrun_tasks(OVERRUN_GRACE_SECONDS))
            time.sleep(REPORT_SECONDS)

    threading.Thread(target=report, name="cloudq-report", daemon=True).start()
    worker.run()
    worker.app.transport.close()  # see cli.worker


@dataclass
class _Child:
    process: BaseProcess
    conn: Connection
    last_report: float = field(default_factory=time.monotonic)


class Supervisor:
    """Keep ``processes`` workers running until SIGTERM/SIGINT."""

    def __init__(
        self,
        app_reference: str,
        processes: int,
        worker_options: WorkerOptions,
        *,
        silence_limit: float = SILENCE_LIMIT_SECONDS,
        logging_options: dict[str, Any] | None = None,
    ) -> None:
        self.app_reference = app_reference
        self.processes = processes
        self.worker_options = worker_options
        self.silence_limit = silence_limit
        self.logging_options = logging_options or {}
        self.replaced = 0
        self._context = multiprocessing.get_context("spawn")
        self._children: list[_Child] = []
        self._stopping = threading.Event()

    def _start_child(self) -> _Child:
        parent_end, child_end = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_child_main,
            args=(self.app_reference, self.worker_options, self.logging_options, child_end),
            name="cloudq-worker",
        )
        process.start()
        child_end.close()
        logger.info("started worker process %s", process.pid)
        return _Child(process, parent_end)

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self._children = [self._start_child() for _ in range(self.processes)]
        while not self._stopping.wait(REPORT_SECONDS / 2):
            for index, child in enumerate(self._children):
                reason = self._check(child)
                if reason and not self._stopping.is_set():
                    logger.warning(
                        "worker process %s %s: killing and replacing it", child.process.pid, reason
                    )
                    self._kill(child)
                    self._children[index] = self._start_child()
                    self.replaced += 1
        self._shutdown()

    def _check(self, child: _Child) -> str | None:
        """Why ``child`` must be replaced, or None if it is healthy."""
        overrun = 0
        while child.conn.poll():
            try:
                overrun = child.conn.recv()
            except EOFError:
                break
            child.last_report = time.monotonic()
        if not child.process.is_alive():
            return f"exited with {child.process.exitcode}"
        if overrun:
            return f"has {overrun} task(s) past their time limit"
        if time.monotonic() - child.last_report > self.silence_limit:
            return f"has not reported for {self.silence_limit:.0f} s (hung)"
        return None

    @staticmethod
    def _kill(child: _Child) -> None:
        child.process.kill()
        child.process.join(timeout=5)
        child.conn.close()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping.is_set():  # second signal: children stop at once too
            for child in self._children:
                child.process.terminate()
            return
        self._stopping.set()

    def _shutdown(self) -> None:
        """Forward the stop to every child (each drains gracefully), then wait for them."""
        for child in self._children:
            child.process.terminate()  # SIGTERM: the child's own graceful shutdown
        grace = self.worker_options.grace + 5
        deadline = time.monotonic() + grace
        for child in self._children:
            child.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if child.process.is_alive():
                child.process.kill()
        logger.info("supervisor stopped (%d process(es) replaced)", self.replaced)
