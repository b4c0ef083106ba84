"""The long-polling worker (EC2, ECS, a laptop): receive → executor → apply the outcome.

- Receivers long-poll each queue and put what they receive on the worker's buffer; a pool of
  ``concurrency`` task threads takes from it. A receiver asks for what the pool can start
  plus a look-ahead: as many messages as the pool is expected to finish within
  ``LOOKAHEAD_SECONDS`` (a moving average of task times), at most a batch per receiver, so
  that every receiver can have a poll in flight while the pool runs (the floor keeps as many
  round trips in flight as it has threads). Tasks slower
  than that get no look-ahead, so nothing waits in a prefetch pile while another worker
  could run it; fast tasks get full batches of 10, so the pool never waits on a round trip
  and every receive and delete carries a full batch. While a queue keeps returning full
  batches of fast tasks, up to ``RECEIVERS_PER_QUEUE`` receivers poll it at once.
  Messages are counted when they arrive, not while a poll waits, so a receiver long-polling
  an idle queue never keeps another queue's messages from the pool. What arrives beyond
  that room (another queue's receiver filled it meanwhile) waits briefly, then is handed back.
- Deletes are batched (up to the transport's batch size per call) by ``ACKERS`` threads, each
  batch sent as soon as it is full, the rest at least every ``ACK_FLUSH_SECONDS``; a transport
  that wants ``immediate_acks`` (RabbitMQ) gets each ack as its task ends.
- While a task runs, and while a received message waits in the buffer, a heartbeat keeps it
  invisible, so a short queue visibility timeout gives fast recovery from a dead worker
  without long tasks running twice. A transport without visibility timeouts
  (``visibility_timeouts = False``, RabbitMQ) holds a received message until it is settled:
  no heartbeat runs, and ``start`` warns about tasks whose timeout passes the broker's
  ``max_visibility_seconds`` (RabbitMQ's consumer timeout).
- ``stop()`` (SIGTERM / SIGINT) stops receiving, hands back at once what was received but not
  started, waits for the long polls in flight and hands back what they return, lets running
  tasks finish, all within ``grace`` seconds, and flushes the acks. A poll is never abandoned
  on a normal stop: SQS does not cancel a receive whose client went away, and would hand the
  next message to it, hidden for the visibility timeout from the workers still polling. An
  idle worker so stops within the long-poll wait (``cloudq.core.config.WORKER_WAIT_SECONDS`` by
  default).
- The end of the grace, or a second signal, abandons what is left: a poll in flight (a
  message it receives reappears after the visibility timeout) and the tasks still running
  (their messages reappear after it too, and follow the retry policy); the log says so.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

from cloudq.core.config import WORKER_CONCURRENCY, WORKER_GRACE_SECONDS
from cloudq.core.errors import CloudQError
from cloudq.options import WorkerOptions, resolve_worker_options
from cloudq.runtime.acker import ACKERS, Acker
from cloudq.runtime.executor import Executor
from cloudq.runtime.heartbeat import Heartbeat
from cloudq.runtime.lanes import is_high_lane
from cloudq.runtime.ledger import Ledger, Running, WorkerStats
from cloudq.runtime.outcome import Action, Prepared, apply_outcome
from cloudq.runtime.receivers import RECEIVERS_PER_QUEUE, Receivers
from cloudq.transports.base import ReceivedMessage

if TYPE_CHECKING:
    from cloudq.app.base import CloudQ
    from cloudq.app.task import Task

__all__ = ["Worker", "WorkerStats"]

# The docs (guides/workers.md) show this logger's name.
logger = logging.getLogger("cloudq.worker")

#: How long a stopping worker waits at least for deletes in flight (the grace may be spent).
ACKER_JOIN_SECONDS = 2.0
#: How often a stopping worker looks whether its running tasks have ended.
STOP_CHECK_SECONDS = 0.05

#: The outcome counts of the stats, by action.
_STAT_OF_ACTION = {Action.RETRY: "retried", Action.DEAD_LETTER: "dead_lettered", Action.RESEND: "resent"}


class Worker:
    """Consume ``queues`` of ``app`` until ``stop()``: task threads over a ledger that the
    receivers fill, an acker and a heartbeat (``cloudq.runtime``)."""

    def __init__(
        self,
        app: CloudQ,
        queues: Sequence[str] | None = None,
        *,
        concurrency: int = WORKER_CONCURRENCY,
        visibility_timeout: int | None = None,
        wait_seconds: float | None = None,
        grace: float = WORKER_GRACE_SECONDS,
        options: WorkerOptions | None = None,
    ) -> None:
        """``options`` (``cloudq.options.WorkerOptions``), or the same as keywords, which
        build it; settings fill what it leaves unset (``cloudq.core.config``)."""
        if options is None:
            options = WorkerOptions.build(
                queues,
                concurrency=concurrency,
                visibility_timeout=visibility_timeout,
                wait_seconds=wait_seconds,
                grace=grace,
            )
        resolved = resolve_worker_options(options, app.settings, app.transport)
        self.app = app
        self.options = resolved
        # A queue's high lane is served with it (``-Q emails``: ``emails``, ``emails-high``).
        self.queues = app.with_lanes(resolved.queues or sorted(app.queue_names()))
        self.concurrency = resolved.concurrency
        self.visibility_timeout = resolved.visibility_timeout
        self.wait_seconds = resolved.wait_seconds
        self.grace = resolved.grace
        self.executor = Executor(app)
        laned = any(is_high_lane(queue) for queue in self.queues)
        self.ledger = Ledger(app.transport.batch_size, resolved.lanes if laned else None)
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self.receivers = Receivers(
            app.transport,
            self.ledger,
            self.queues,
            concurrency=self.concurrency,
            wait_seconds=self.wait_seconds,
            visibility_timeout=self.visibility_timeout,
            stopping=self._stopping,
        )
        self.acker = Acker(app.transport, self.ledger, on_flush=self.executor.flush_metrics)
        # A concurrency lease lasts as long as a message's visibility: both are renewed by
        # the heartbeat, and both end within it when the worker dies.
        self.executor.flow.lease_seconds = self.visibility_timeout
        # A message at its cap may wait a little for a slot in its task thread, giving way
        # to a received message that may run at once.
        self.executor.flow.wait_for_slots(self.concurrency, self.ledger.queued, self.executor.prepare)
        self.heartbeat = Heartbeat(
            app.transport, self.ledger, self.visibility_timeout, renew=self.executor.flow.renew
        )
        self._receiver_threads: list[threading.Thread] = []
        self._task_threads: list[threading.Thread] = []
        self._acker_threads: list[threading.Thread] = []
        self._warned_long: set[str] = set()

    @property
    def stats(self) -> WorkerStats:
        """Messages by what became of them (``acked``: deletes the broker confirmed)."""
        return self.ledger.stats

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Check the queues exist, then start the task threads, receivers, the ackers and the
        heartbeat."""
        self.app.transport.check_queues(self.queues)
        if self.grace < self.wait_seconds:
            logger.warning(
                "grace %g s is shorter than the long-poll wait %g s: a stop may end its grace with a "
                "poll in flight and abandon it; a message SQS then hands that poll waits out the "
                "visibility timeout (%d s). A --wait no longer than --grace avoids it",
                self.grace,
                self.wait_seconds,
                self.visibility_timeout,
            )
        for task in self.app.tasks.values():
            if task.queue in self.queues:
                self._task_timeout_warning(task)
        for index in range(self.concurrency):
            self._task_threads.append(_spawn(self._task_loop, f"cloudq-task-{index}"))
        for queue in self.queues:
            for index in range(RECEIVERS_PER_QUEUE):
                thread = _spawn(self.receivers.loop, f"cloudq-receive-{queue}-{index}", queue, index)
                self._receiver_threads.append(thread)
        for index in range(ACKERS):
            self._acker_threads.append(_spawn(self.acker.loop, f"cloudq-acker-{index}", index, self._stopped))
        _spawn(self.heartbeat.loop, "cloudq-heartbeat", self._stopped)

    def run(self) -> None:
        """Start, then block until stopped by ``stop()`` or SIGTERM/SIGINT (main thread)."""
        self.start()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        self._stopping.wait()
        self._shutdown()
        left = self.ledger.running_count()
        if left and threading.current_thread() is threading.main_thread():
            # Task threads cannot be stopped, and the interpreter would wait for them at exit.
            logger.warning(
                "%d task(s) still running after the %.0f s grace: exiting; their messages come "
                "back after their visibility timeout",
                left,
                self.grace,
            )
            _exit_now(1)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping.is_set():
            logger.warning(
                "second signal: exiting now; %d running task(s) come back after their visibility timeout; %s",
                self.ledger.running_count(),
                self._abandoned_polls(),
            )
            _exit_now(128 + signum)
        logger.info(
            "signal %d: stopping (polls in flight end within %g s, grace %.0f s; send again to exit now)",
            signum,
            self.wait_seconds,
            self.grace,
        )
        self.stop()

    def stop(self) -> None:
        """Ask the worker to stop gracefully (safe from any thread)."""
        self._stopping.set()
        self.ledger.wake()

    def _shutdown(self) -> None:
        deadline = time.monotonic() + self.grace
        # Received and not started: visible again at once, for other workers.
        self.receivers.hand_back(self.ledger.take_queued())
        self._join_receivers(deadline)
        while self.ledger.running_count() and time.monotonic() < deadline:
            time.sleep(STOP_CHECK_SECONDS)
        self._stopped.set()
        self.ledger.close(len(self._task_threads))
        self.receivers.hand_back(self.ledger.take_queued())
        # An acker may be sending deletes it took before the stop: they must reach the broker
        # before the process exits, or those messages come back and run again.
        join_until = max(deadline, time.monotonic() + ACKER_JOIN_SECONDS)
        for thread in self._acker_threads:
            thread.join(timeout=max(0.0, join_until - time.monotonic()))
        self.acker.flush()
        self.executor.flush_metrics()
        logger.info("worker stopped: %s", self.stats)

    def _join_receivers(self, deadline: float) -> None:
        """Wait until ``deadline`` for the polls in flight to end; what they return is handed
        back by the receivers. SQS does not cancel a poll whose client went away: abandoned, it
        would take the next message and hide it from the other workers for the visibility
        timeout."""
        for thread in self._receiver_threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self.ledger.polls():
            logger.warning("grace of %g s over: %s", self.grace, self._abandoned_polls())

    def _abandoned_polls(self) -> str:
        """What abandoning the polls in flight now costs, for the log."""
        polls = self.ledger.polls()
        if not polls:
            return "no poll in flight"
        return (
            f"{polls} long poll(s) in flight abandoned: a message SQS hands one waits out the "
            f"visibility timeout ({self.visibility_timeout} s) before another worker can receive it"
        )

    def overrun_tasks(self, grace: float) -> int:
        """How many running tasks are more than ``grace`` seconds past their timeout."""
        return self.ledger.overrun(time.monotonic(), grace)

    # -- running -------------------------------------------------------------------------

    def _task_timeout(self, prepared: Prepared) -> float | None:
        """The timeout of the message's task, for the heartbeat (None if unknown or untimed)."""
        task = prepared.task
        if task is None or task.timeout is None:
            return None
        self._task_timeout_warning(task)
        return task.timeout

    def _task_timeout_warning(self, task: Task[Any, Any]) -> None:
        """Warn once about a task that can outlive the broker's hold on its message."""
        ceiling = self.app.transport.max_visibility_seconds
        if task.timeout is None or task.timeout <= ceiling or task.name in self._warned_long:
            return
        self._warned_long.add(task.name)
        logger.warning(
            "task %s has a timeout of %.0f s, past the broker's %d s limit on holding a received "
            "message (%s): its message will be delivered again while it runs; split the work",
            task.name,
            task.timeout,
            ceiling,
            self.app.transport.describe(),
        )

    def _task_loop(self) -> None:
        while (run := self.ledger.next_run()) is not None:
            try:
                self._process(run)
            except Exception:  # a worker never dies of one message; it reappears after visibility
                logger.exception("error handling %s", [message.message_id for message in run])

    def _process(self, run: list[ReceivedMessage]) -> None:
        """Run messages on one thread, in order (one, or a FIFO group's messages of one
        receive). After a message of a run that is not acknowledged (a retry), the rest are
        handed back: its group keeps its order. A message already handed back (shutdown) is
        skipped: it is no longer this worker's."""
        acknowledged = True
        for position, message in enumerate(run):
            if self._stopping.is_set() or not acknowledged:
                self.receivers.hand_back(self.ledger.unqueue(run[position:]))  # not started at all
                return
            started = time.monotonic()
            running = self.ledger.start(message, started)
            if running is None:
                continue
            acknowledged = self._run(running)
            self.receivers.pace.task_done(time.monotonic() - started)

    def _run(self, running: Running) -> bool:
        """Run one message and apply its outcome; ``True`` when it was acknowledged."""
        message = running.message
        outcome = None
        try:
            prepared = self.executor.prepare(message)
            running.timeout = self._task_timeout(prepared)
            outcome = self.executor.execute(prepared)
        except Exception:  # a worker never dies of one message; it reappears after visibility
            logger.exception("error handling message %s", message.message_id)
        finally:
            # Off the heartbeat before the outcome is applied, so an extension cannot
            # overwrite a retry's visibility delay; an ack is queued in the same step.
            self.ledger.finish(message, acknowledged=outcome is not None and outcome.action is Action.ACK)
        if outcome is None:
            return False
        if outcome.action is Action.ACK:
            if self.app.transport.immediate_acks:  # RabbitMQ: see Transport.immediate_acks
                self.acker.flush()
            return True
        self.ledger.count(_STAT_OF_ACTION[outcome.action])
        try:
            apply_outcome(self.app.transport, prepared, outcome)
        except CloudQError as exc:
            logger.warning("could not apply %s to %s: %s", outcome.action.value, message.message_id, exc)
        return outcome.action is not Action.RETRY


def _spawn(target: Any, name: str, *args: object) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, args=args, daemon=True)
    thread.start()
    return thread


def _exit_now(code: int) -> None:
    """Exit the process without waiting for pool threads still running tasks."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(code)
