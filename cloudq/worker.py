"""The long-polling worker (EC2, ECS, a laptop): receive → executor → apply the outcome.

- One receiver thread per queue long-polls, asking only for as many messages as there are
  free slots in the pool, so nothing waits in a prefetch pile while its visibility runs out.
  Slots are taken when messages arrive, not while a poll waits, so a receiver long-polling an
  idle queue never keeps another queue's messages from the free slots. A message that finds
  no free slot (another receiver took them meanwhile) waits briefly, then is handed back.
- Tasks run on a thread pool of ``concurrency`` threads.
- Deletes are batched (up to 10 per call) by an acker thread.
- While a task runs, a heartbeat keeps its message invisible, so a short queue visibility
  timeout gives fast recovery from a dead worker without long tasks running twice. A
  transport without visibility timeouts (``visibility_timeouts = False``, RabbitMQ) holds a
  received message until it is settled: no heartbeat runs, and ``start`` warns about tasks
  whose timeout passes the broker's ``max_visibility_seconds`` (RabbitMQ's consumer timeout).
- ``stop()`` (SIGTERM / SIGINT) stops receiving, hands back what was fetched but not started,
  lets running tasks finish within ``grace`` seconds, and flushes the acks. It waits at most
  ``RECEIVER_JOIN_SECONDS`` for a long poll in flight (up to 20 s on an idle queue): a
  receive call cannot be cancelled, so an idle worker exits within about a second, and a
  message SQS hands to an abandoned poll in its last moments reappears after its visibility
  timeout: late, never lost.
- A second signal exits the process at once: the messages of tasks still running reappear
  after their visibility timeout and follow the retry policy.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

from cloudq.config import WORKER_CONCURRENCY, WORKER_GRACE_SECONDS, resolve_worker_options
from cloudq.errors import CloudQError
from cloudq.execution import Action, Executor, Prepared, apply_outcome
from cloudq.health import Health
from cloudq.options import WorkerOptions
from cloudq.transports.base import ReceivedMessage, is_fifo

if TYPE_CHECKING:
    from cloudq.app import CloudQ
    from cloudq.task import Task

logger = logging.getLogger(__name__)

#: How often the acker flushes partial batches of deletes.
ACK_FLUSH_SECONDS = 0.05
#: After a receive error, wait this long (doubling, capped) before polling again.
RECEIVE_BACKOFF_SECONDS = (0.5, 15.0)

#: How long a stopping worker waits for polls in flight to end before abandoning them.
RECEIVER_JOIN_SECONDS = 1.0
#: Longest wait of a received message for a free slot before it is handed back.
SLOT_WAIT_SECONDS = 2.0


class _Slots:
    """The pool's free places: a counting semaphore whose free count can be read."""

    def __init__(self, size: int) -> None:
        self._free = size
        self._changed = threading.Condition()

    @property
    def free(self) -> int:
        with self._changed:
            return self._free

    def wait_free(self, timeout: float) -> bool:
        """Wait until at least one place is free, without taking it."""
        with self._changed:
            return self._changed.wait_for(lambda: self._free > 0, timeout)

    def take(self, timeout: float) -> bool:
        with self._changed:
            if not self._changed.wait_for(lambda: self._free > 0, timeout):
                return False
            self._free -= 1
            return True

    def give(self) -> None:
        with self._changed:
            self._free += 1
            self._changed.notify_all()


@dataclass
class _Running:
    message: ReceivedMessage
    started: float
    timeout: float | None


@dataclass
class WorkerStats:
    received: int = 0
    acked: int = 0
    retried: int = 0
    dead_lettered: int = 0
    resent: int = 0
    handed_back: int = 0


class Worker:
    """Consume ``queues`` of ``app`` until ``stop()``."""

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
        build it; settings fill what it leaves unset (``cloudq.config``)."""
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
        self.queues = list(resolved.queues or sorted(app.queue_names()))
        self.concurrency = resolved.concurrency
        self.visibility_timeout = resolved.visibility_timeout
        self.wait_seconds = resolved.wait_seconds
        self.grace = resolved.grace
        self.executor = Executor(app)
        self.stats = WorkerStats()
        self._slots = _Slots(self.concurrency)
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="cloudq-task")
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        #: Set under ``_lock`` at shutdown: no more messages go to the pool.
        self._closed = False
        self._lock = threading.Lock()
        self._acks: dict[str, list[str]] = defaultdict(list)
        self._running: dict[str, _Running] = {}
        #: Submitted to the pool, not started yet (receipt handle → message).
        self._queued: dict[str, ReceivedMessage] = {}
        self._threads: list[threading.Thread] = []
        self._health = Health()
        self._warned_long: set[str] = set()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Check the queues exist, then start receivers, the acker and the heartbeat."""
        self.app.transport.check_queues(self.queues)
        for task in self.app.tasks.values():
            if task.queue in self.queues:
                self._task_timeout_warning(task)
        for queue in self.queues:
            self._spawn(self._receive_loop, f"cloudq-receive-{queue}", queue)
        self._spawn(self._ack_loop, "cloudq-acker")
        if self.app.transport.visibility_timeouts:
            self._spawn(self._heartbeat_loop, "cloudq-heartbeat")

    def _spawn(self, target: object, name: str, *args: object) -> None:
        thread = threading.Thread(target=target, name=name, args=args, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def run(self) -> None:
        """Start, then block until stopped by ``stop()`` or SIGTERM/SIGINT (main thread)."""
        self.start()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        self._stopping.wait()
        self._shutdown()
        left = self._running_count()
        if left and threading.current_thread() is threading.main_thread():
            # Pool threads cannot be stopped, and the interpreter would wait for them at exit.
            logger.warning(
                "%d task(s) still running after the %.0f s grace: exiting; their messages come "
                "back after their visibility timeout",
                left,
                self.grace,
            )
            _exit_now(1)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping.is_set():
            running = self._running_count()
            logger.warning(
                "second signal: exiting now; %d running task(s) come back after their visibility timeout",
                running,
            )
            _exit_now(128 + signum)
        logger.info("signal %d: stopping (grace %.0f s; send again to exit now)", signum, self.grace)
        self._stopping.set()

    def stop(self) -> None:
        """Ask the worker to stop gracefully (safe from any thread)."""
        self._stopping.set()

    def _shutdown(self) -> None:
        # Receivers get a moment to end their polls (a short poll ends within it, and what it
        # returns is handed back by ``_dispatch``); one still in a long poll is abandoned.
        deadline = time.monotonic() + self.grace
        join_until = min(deadline, time.monotonic() + RECEIVER_JOIN_SECONDS)
        for thread in self._threads:
            if thread.name.startswith("cloudq-receive"):
                thread.join(timeout=max(0.0, join_until - time.monotonic()))
        while self._running_count() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stopped.set()
        with self._lock:
            self._closed = True
            cancelled, self._queued = list(self._queued.values()), {}
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._hand_back(cancelled)
        self._flush_acks()
        self.executor.flush_metrics()
        logger.info("worker stopped: %s", self.stats)

    def overrun_tasks(self, grace: float) -> int:
        """How many running tasks are more than ``grace`` seconds past their timeout."""
        now = time.monotonic()
        with self._lock:
            running = list(self._running.values())
        return sum(
            1 for item in running if item.timeout is not None and now - item.started > item.timeout + grace
        )

    def _running_count(self) -> int:
        with self._lock:
            return len(self._running)

    # -- receiving -----------------------------------------------------------------------

    def _receive_loop(self, queue: str) -> None:
        backoff = RECEIVE_BACKOFF_SECONDS[0]
        while not self._stopping.is_set():
            if not self._slots.wait_free(timeout=0.2):
                continue
            wanted = max(1, min(self.app.transport.batch_size, self._slots.free))
            try:
                messages = self.app.transport.receive(
                    queue, wanted, self.wait_seconds, self.visibility_timeout
                )
            except CloudQError as exc:
                self._health.failed(f"receive from {queue}", exc)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, RECEIVE_BACKOFF_SECONDS[1])
                continue
            self._health.ok(f"receive from {queue}")
            backoff = RECEIVE_BACKOFF_SECONDS[0]
            self._dispatch(messages)

    def _dispatch(self, messages: list[ReceivedMessage]) -> None:
        """Start each message on a free slot; hand back the rest when stopping, or when no
        slot frees up soon (another receiver took the free ones meanwhile)."""
        with self._lock:
            self.stats.received += len(messages)
        slot_wait = min(SLOT_WAIT_SECONDS, self.visibility_timeout / 3)
        runs = _runs(messages)
        for position, run in enumerate(runs):
            if self._stopping.is_set() or not self._slots.take(timeout=slot_wait):
                self._hand_back([message for later in runs[position:] for message in later])
                return
            with self._lock:
                accepted = not self._closed
                if accepted:
                    self._queued.update((message.receipt_handle, message) for message in run)
                    self._pool.submit(self._process, run)
            if not accepted:  # shut down meanwhile
                self._slots.give()
                self._hand_back([message for later in runs[position:] for message in later])
                return

    def _hand_back(self, messages: list[ReceivedMessage]) -> None:
        """Make fetched-but-unstarted messages visible again at once."""
        for message in messages:
            try:
                self.app.transport.change_visibility(message.queue, message.receipt_handle, 0)
            except CloudQError as exc:
                logger.warning("could not hand back %s: %s", message.message_id, exc)
        with self._lock:
            self.stats.handed_back += len(messages)

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

    def _process(self, run: list[ReceivedMessage]) -> None:
        """Run messages on one slot, in order (one, or a FIFO group's messages of one receive);
        the slot is given back once the outcomes are applied. After a message of a run that
        is not acknowledged (a retry), the rest are handed back: its group keeps its order."""
        try:
            acknowledged = True
            for position, message in enumerate(run):
                with self._lock:
                    self._queued.pop(message.receipt_handle, None)
                if self._stopping.is_set() or not acknowledged:
                    with self._lock:
                        for later in run[position:]:
                            self._queued.pop(later.receipt_handle, None)
                    self._hand_back(run[position:])  # not started at all
                    return
                acknowledged = self._run(message)
        finally:
            self._slots.give()

    def _run(self, message: ReceivedMessage) -> bool:
        """Run one message and apply its outcome; ``True`` when it was acknowledged."""
        prepared = self.executor.prepare(message)
        running = _Running(message, time.monotonic(), self._task_timeout(prepared))
        with self._lock:
            self._running[message.receipt_handle] = running
        outcome = None
        try:
            outcome = self.executor.execute(prepared)
        except Exception:  # a worker never dies of one message; it reappears after visibility
            logger.exception("error handling message %s", message.message_id)
        finally:
            # Off the heartbeat before the outcome is applied, so an extension cannot
            # overwrite a retry's visibility delay. An ack is queued in the same step: a
            # stopping worker that sees no task running then has every ack to flush.
            with self._lock:
                self._running.pop(message.receipt_handle, None)
                if outcome is not None and outcome.action is Action.ACK:
                    self._acks[message.queue].append(message.receipt_handle)
        if outcome is None:
            return False
        self._count(outcome.action)
        if outcome.action is Action.ACK:
            if self.app.transport.immediate_acks:  # RabbitMQ: see Transport.immediate_acks
                self._flush_acks()
            return True
        try:
            apply_outcome(self.app.transport, prepared, outcome)
        except CloudQError as exc:
            logger.warning("could not apply %s to %s: %s", outcome.action.value, message.message_id, exc)
        return outcome.action is not Action.RETRY

    def _count(self, action: Action) -> None:
        field = {
            Action.ACK: "acked",
            Action.RETRY: "retried",
            Action.DEAD_LETTER: "dead_lettered",
            Action.RESEND: "resent",
        }[action]
        with self._lock:
            setattr(self.stats, field, getattr(self.stats, field) + 1)

    # -- background: acks and heartbeat -------------------------------------------------

    def _ack_loop(self) -> None:
        while not self._stopped.is_set():
            self._flush_acks()
            self.executor.flush_metrics()  # EMF lines go out with the deletes, not per task
            self._stopped.wait(ACK_FLUSH_SECONDS)

    def _flush_acks(self) -> None:
        with self._lock:
            pending, self._acks = self._acks, defaultdict(list)
        for queue, handles in pending.items():
            size = self.app.transport.batch_size
            for start in range(0, len(handles), size):
                batch = handles[start : start + size]
                try:
                    self.app.transport.ack(queue, batch)
                except CloudQError as exc:
                    # Not deleted: the messages reappear and the idempotency claim acks them.
                    self._health.failed(f"delete on {queue}", exc)
                    continue
                self._health.ok(f"delete on {queue}")

    def _heartbeat_loop(self) -> None:
        """Every third of the visibility timeout, extend the messages of running tasks (one
        batched call per queue). A task past its timeout is no longer extended: its message
        reappears and the retry policy takes over."""
        interval = max(self.visibility_timeout / 3, 0.5)
        while not self._stopped.wait(interval):
            for queue, handles in self._due_for_extension().items():
                try:
                    self.app.transport.extend_visibility(queue, handles, self.visibility_timeout)
                except CloudQError as exc:
                    self._health.failed(f"heartbeat on {queue}", exc)
                    continue
                self._health.ok(f"heartbeat on {queue}")

    def _due_for_extension(self) -> dict[str, list[str]]:
        now = time.monotonic()
        due: dict[str, list[str]] = defaultdict(list)
        with self._lock:
            running = list(self._running.values())
            # Not started yet: a FIFO group's later messages wait for its running one.
            waiting = list(self._queued.values())
        for item in running:
            overran = item.timeout is not None and now - item.started > item.timeout
            if overran:
                continue
            due[item.message.queue].append(item.message.receipt_handle)
        for message in waiting:
            due[message.queue].append(message.receipt_handle)
        return due


def _runs(messages: list[ReceivedMessage]) -> list[list[ReceivedMessage]]:
    """Messages grouped into runs for one slot each: a FIFO queue's messages of one message
    group (SQS hands out several of a group at once, in order) form one run, so two of a group
    never run at once; any other message is a run of its own."""
    runs: list[list[ReceivedMessage]] = []
    by_group: dict[tuple[str, str], list[ReceivedMessage]] = {}
    for message in messages:
        if message.group_id is None or not is_fifo(message.queue):
            runs.append([message])
        elif (message.queue, message.group_id) in by_group:
            by_group[(message.queue, message.group_id)].append(message)
        else:
            runs.append(by_group.setdefault((message.queue, message.group_id), [message]))
    return runs


def _exit_now(code: int) -> None:
    """Exit the process without waiting for pool threads still running tasks."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(code)
