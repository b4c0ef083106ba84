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
  idle worker so stops within the long-poll wait (``cloudq.config.WORKER_WAIT_SECONDS`` by
  default).
- The end of the grace, or a second signal, abandons what is left: a poll in flight (a
  message it receives reappears after the visibility timeout) and the tasks still running
  (their messages reappear after it too, and follow the retry policy); the log says so.
"""

from __future__ import annotations

import logging
import os
import queue as queue_module
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

from cloudq.config import WORKER_CONCURRENCY, WORKER_GRACE_SECONDS
from cloudq.errors import CloudQError
from cloudq.execution import Action, Executor, Prepared, apply_outcome
from cloudq.health import Health
from cloudq.options import WorkerOptions, resolve_worker_options
from cloudq.transports.base import ReceivedMessage, is_fifo

if TYPE_CHECKING:
    from cloudq.app import CloudQ
    from cloudq.task import Task

logger = logging.getLogger(__name__)

#: How often the acker flushes partial batches of deletes.
ACK_FLUSH_SECONDS = 0.05
#: After a receive error, wait this long (doubling, capped) before polling again.
RECEIVE_BACKOFF_SECONDS = (0.5, 15.0)

#: How long a stopping worker waits at least for deletes in flight (the grace may be spent).
ACKER_JOIN_SECONDS = 2.0
#: Longest wait of a received message for room in the pool before it is handed back.
SLOT_WAIT_SECONDS = 2.0
#: Receivers per queue while it keeps returning full batches of fast tasks (one otherwise).
RECEIVERS_PER_QUEUE = 4
#: Threads sending full batches of deletes (the first also sends partial ones): as many as
#: receivers, so deletes keep up with the receives in flight.
ACKERS = 4
#: Weight of the newest sample in the moving average of task times.
PACE_WEIGHT = 0.1
#: Received messages wait for a thread about this long at most, on average (see ``_Pace``).
LOOKAHEAD_SECONDS = 0.25


class _Pace:
    """How many messages to receive ahead of free threads: as many as the pool is expected to
    finish within ``LOOKAHEAD_SECONDS`` (a moving average of task times), at most ``limit``
    (a batch per receiver); 0 until a task has run. Fast tasks get full batches (every
    receive and delete carries 10, and the pool never waits on a round trip); tasks slower
    than that get none, so no message waits behind them while another worker could run it."""

    def __init__(self, concurrency: int, limit: int) -> None:
        self._concurrency = concurrency
        self._limit = limit
        self._task_seconds: float | None = None

    def task_done(self, seconds: float) -> None:
        current = self._task_seconds
        self._task_seconds = seconds if current is None else current + PACE_WEIGHT * (seconds - current)

    @property
    def lookahead(self) -> int:
        if self._task_seconds is None:
            return 0
        expected = self._concurrency * LOOKAHEAD_SECONDS / max(self._task_seconds, 1e-6)
        return min(self._limit, int(expected))


@dataclass
class _Running:
    message: ReceivedMessage
    started: float
    timeout: float | None = None


@dataclass
class WorkerStats:
    """Messages by what became of them; ``acked`` counts deletes the broker confirmed."""

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
        self._batch_size = app.transport.batch_size
        self._pace = _Pace(self.concurrency, RECEIVERS_PER_QUEUE * self._batch_size)
        #: Runs received and not started, for the task threads (``None`` stops one).
        self._buffer: queue_module.SimpleQueue[list[ReceivedMessage] | None] = queue_module.SimpleQueue()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        #: Set under ``_lock`` at shutdown: no more messages go to the buffer.
        self._closed = False
        self._lock = threading.Lock()
        #: Notified (under ``_lock``) when messages held fall: a task ends or is handed back.
        self._room = threading.Condition(self._lock)
        #: The most messages held at which a waiter on ``_room`` can go on (-1: none waits).
        self._wake_at = -1
        self._acks: dict[str, list[str]] = defaultdict(list)
        #: Notified (under ``_lock``) when a batch of deletes is full.
        self._ack_ready = threading.Condition(self._lock)
        self._running: dict[str, _Running] = {}
        #: Received, not started yet (receipt handle → message); whoever pops one owns it.
        self._queued: dict[str, ReceivedMessage] = {}
        #: Queues whose last receive returned a full batch: their extra receivers poll too.
        self._full: dict[str, threading.Event] = {name: threading.Event() for name in self.queues}
        self._threads: list[threading.Thread] = []
        self._task_threads: list[threading.Thread] = []
        self._ackers: list[threading.Thread] = []
        self._health = Health()
        self._warned_long: set[str] = set()
        #: Receives in flight (under ``_lock``), for the log line of a stop that abandons them.
        self._polls = 0

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Check the queues exist, then start the task threads, receivers, the acker and the
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
            self._task_threads.append(self._spawn(self._task_loop, f"cloudq-task-{index}"))
        for queue in self.queues:
            for index in range(RECEIVERS_PER_QUEUE):
                self._spawn(self._receive_loop, f"cloudq-receive-{queue}-{index}", queue, index)
        for index in range(ACKERS):
            self._ackers.append(self._spawn(self._ack_loop, f"cloudq-acker-{index}", index))
        if self.app.transport.visibility_timeouts:
            self._spawn(self._heartbeat_loop, "cloudq-heartbeat")

    def _spawn(self, target: object, name: str, *args: object) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, args=args, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)
        return thread

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
                self._running_count(),
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
        with self._room:
            self._room.notify_all()

    def _shutdown(self) -> None:
        deadline = time.monotonic() + self.grace
        # Received and not started: visible again at once, for other workers.
        self._hand_back(self._take_queued())
        self._join_receivers(deadline)
        while self._running_count() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stopped.set()
        with self._lock:
            self._closed = True
            self._ack_ready.notify_all()
        self._hand_back(self._take_queued())
        for _ in self._task_threads:
            self._buffer.put(None)
        # An acker may be sending deletes it took before the stop: they must reach the broker
        # before the process exits, or those messages come back and run again.
        join_until = max(deadline, time.monotonic() + ACKER_JOIN_SECONDS)
        for thread in self._ackers:
            thread.join(timeout=max(0.0, join_until - time.monotonic()))
        self._flush_acks()
        self.executor.flush_metrics()
        logger.info("worker stopped: %s", self.stats)

    def _join_receivers(self, deadline: float) -> None:
        """Wait until ``deadline`` for the polls in flight to end; what they return is handed
        back by ``_dispatch``. SQS does not cancel a poll whose client went away: abandoned, it
        would take the next message and hide it from the other workers for the visibility
        timeout."""
        for thread in self._threads:
            if thread.name.startswith("cloudq-receive"):
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
        with self._lock:
            polls = self._polls
        if polls:
            logger.warning("grace of %g s over: %s", self.grace, self._abandoned_polls())

    def _abandoned_polls(self) -> str:
        """What abandoning the polls in flight now costs, for the log."""
        with self._lock:
            polls = self._polls
        if not polls:
            return "no poll in flight"
        return (
            f"{polls} long poll(s) in flight abandoned: a message SQS hands one waits out the "
            f"visibility timeout ({self.visibility_timeout} s) before another worker can receive it"
        )

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

    def _receive_loop(self, queue: str, index: int) -> None:
        backoff = RECEIVE_BACKOFF_SECONDS[0]
        full = self._full[queue]
        while not self._stopping.is_set():
            if index and not (full.wait(timeout=0.2) and self._pace.lookahead):
                continue  # an extra receiver polls only a queue busy with fast tasks
            wanted = self._wait_for_room(timeout=0.2)
            if not wanted:
                continue
            try:
                messages = self._poll(queue, wanted)
            except CloudQError as exc:
                self._health.failed(f"receive from {queue}", exc)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, RECEIVE_BACKOFF_SECONDS[1])
                continue
            self._health.ok(f"receive from {queue}")
            backoff = RECEIVE_BACKOFF_SECONDS[0]
            if len(messages) == self._batch_size:
                full.set()
            else:
                full.clear()
            if messages:
                self._dispatch(messages)

    def _poll(self, queue: str, wanted: int) -> list[ReceivedMessage]:
        """One receive, counted while it is in flight."""
        with self._lock:
            self._polls += 1
        try:
            return self.app.transport.receive(queue, wanted, self.wait_seconds, self.visibility_timeout)
        finally:
            with self._lock:
                self._polls -= 1

    def _held(self) -> int:
        """Messages received and not settled: running or waiting for a thread (under the lock)."""
        return len(self._running) + len(self._queued)

    def _wait_for_room(self, timeout: float) -> int:
        """Wait until the pool has room for a receive worth making; how many to ask for (0 on
        timeout or stop). With a look-ahead, the room is worth a receive once it holds the
        look-ahead (a full batch for fast tasks); without, once one thread is free."""
        lookahead = self._pace.lookahead
        capacity = self.concurrency + lookahead
        worth = max(1, min(self._batch_size, lookahead))
        with self._room:
            if not self._wait_held(capacity - worth, timeout) or self._stopping.is_set():
                return 0
            return min(self._batch_size, capacity - self._held())

    def _wait_held(self, at_most: int, timeout: float) -> bool:
        """Under ``_room``: wait until at most ``at_most`` messages are held, or stop. Task
        threads wake the waiters only once the fewest held that any waiter asked for is
        reached (not on every task's end)."""
        deadline = time.monotonic() + timeout
        while self._held() > at_most and not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._wake_at = max(self._wake_at, at_most)
            self._room.wait(remaining)
        return True

    def _released(self) -> None:
        """Under ``_room``: fewer messages are held; wake the waiters it may concern."""
        if self._held() <= self._wake_at:
            self._wake_at = -1
            self._room.notify_all()

    def _dispatch(self, messages: list[ReceivedMessage]) -> None:
        """Put each run on the buffer while the pool has room for it; hand back the rest when
        stopping, or when no room frees up soon (another receiver filled it meanwhile)."""
        with self._lock:
            self.stats.received += len(messages)
        slot_wait = min(SLOT_WAIT_SECONDS, self.visibility_timeout / 3)
        runs = _runs(messages)
        # Room for a batch beyond the look-ahead: receivers of several queues may fill it at once.
        lookahead = self._pace.lookahead
        capacity = self.concurrency + lookahead + (self._batch_size if lookahead else 0)
        for position, run in enumerate(runs):
            with self._room:
                accepted = self._wait_held(capacity - 1, slot_wait)
                accepted = accepted and not self._stopping.is_set() and not self._closed
                if accepted:
                    self._queued.update((message.receipt_handle, message) for message in run)
                    self._buffer.put(run)
            if not accepted:
                self._hand_back([message for later in runs[position:] for message in later])
                return

    def _take_queued(self) -> list[ReceivedMessage]:
        """Take every received, unstarted message off the buffer (their task threads skip them)."""
        with self._room:
            taken, self._queued = list(self._queued.values()), {}
            self._released()
        return taken

    def _hand_back(self, messages: list[ReceivedMessage]) -> None:
        """Make fetched-but-unstarted messages visible again at once."""
        for message in messages:
            try:
                self.app.transport.change_visibility(message.queue, message.receipt_handle, 0)
            except CloudQError as exc:
                logger.warning("could not hand back %s: %s", message.message_id, exc)
        if messages:
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

    def _task_loop(self) -> None:
        while True:
            run = self._buffer.get()
            if run is None:
                return
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
                self._hand_back(self._unqueue(run[position:]))  # not started at all
                return
            started = time.monotonic()
            with self._lock:
                if self._queued.pop(message.receipt_handle, None) is None:
                    continue
                running = self._running[message.receipt_handle] = _Running(message, started)
            acknowledged = self._run(running)
            self._pace.task_done(time.monotonic() - started)

    def _unqueue(self, messages: list[ReceivedMessage]) -> list[ReceivedMessage]:
        """Those of ``messages`` still waiting, taken off the buffer."""
        with self._room:
            taken = [message for message in messages if self._queued.pop(message.receipt_handle, None)]
            self._released()
        return taken

    def _run(self, running: _Running) -> bool:
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
            # overwrite a retry's visibility delay. An ack is queued in the same step: a
            # stopping worker that sees no task running then has every ack to flush.
            with self._room:
                del self._running[message.receipt_handle]
                if outcome is not None and outcome.action is Action.ACK:
                    pending = self._acks[message.queue]
                    pending.append(message.receipt_handle)
                    if len(pending) >= self._batch_size:
                        self._ack_ready.notify()
                self._released()
        if outcome is None:
            return False
        if outcome.action is Action.ACK:
            if self.app.transport.immediate_acks:  # RabbitMQ: see Transport.immediate_acks
                self._flush_acks()
            return True
        self._count(outcome.action)
        try:
            apply_outcome(self.app.transport, prepared, outcome)
        except CloudQError as exc:
            logger.warning("could not apply %s to %s: %s", outcome.action.value, message.message_id, exc)
        return outcome.action is not Action.RETRY

    def _count(self, action: Action) -> None:
        field = {
            Action.RETRY: "retried",
            Action.DEAD_LETTER: "dead_lettered",
            Action.RESEND: "resent",
        }[action]
        with self._lock:
            setattr(self.stats, field, getattr(self.stats, field) + 1)

    # -- background: acks and heartbeat -------------------------------------------------

    def _ack_loop(self, index: int) -> None:
        """Send each full batch of deletes as soon as it is full (``ACKERS`` threads share
        them, woken one per full batch, so deletes keep up with receives that are in flight
        several at a time); the first acker also sends partial batches every
        ``ACK_FLUSH_SECONDS``, with the EMF lines (they go out with the deletes)."""
        flushed = time.monotonic()
        while not self._stopped.is_set():
            with self._lock:
                if not self._full_acks():
                    wait = 0.2 if index else flushed + ACK_FLUSH_SECONDS - time.monotonic()
                    self._ack_ready.wait(max(0.0, wait))
            self._send_full_acks()
            if not index and time.monotonic() >= flushed + ACK_FLUSH_SECONDS:
                self._flush_acks()
                self.executor.flush_metrics()
                flushed = time.monotonic()

    def _full_acks(self) -> bool:
        """Under ``_lock``: a full batch of deletes is pending."""
        return any(len(handles) >= self._batch_size for handles in self._acks.values())

    def _flush_acks(self) -> None:
        """Send every delete pending now, partial batches included (not those that arrive
        meanwhile: they wait for a full batch or the next flush)."""
        size = self._batch_size
        with self._lock:
            pending, self._acks = self._acks, defaultdict(list)
        for queue, handles in pending.items():
            for start in range(0, len(handles), size):
                self._send_ack(queue, handles[start : start + size])

    def _send_full_acks(self) -> None:
        while batch := self._take_full_acks():
            self._send_ack(*batch)

    def _send_ack(self, queue: str, handles: list[str]) -> None:
        try:
            self.app.transport.ack(queue, handles)
        except CloudQError as exc:
            # Not deleted: the messages reappear and the idempotency claim acks them.
            self._health.failed(f"delete on {queue}", exc)
            return
        with self._lock:
            self.stats.acked += len(handles)  # acknowledged: deleted on the broker
        self._health.ok(f"delete on {queue}")

    def _take_full_acks(self) -> tuple[str, list[str]] | None:
        """One full batch of pending deletes, or ``None``."""
        size = self._batch_size
        with self._lock:
            for queue, handles in self._acks.items():
                if len(handles) >= size:
                    batch, self._acks[queue] = handles[:size], handles[size:]
                    return queue, batch
            return None

    def _heartbeat_loop(self) -> None:
        """Every third of the visibility timeout, extend the messages of running tasks and of
        those waiting in the buffer (one batched call per queue). A task past its timeout is
        no longer extended: its message reappears and the retry policy takes over."""
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
