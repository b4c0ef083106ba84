"""The long-polling worker (EC2, ECS, a laptop): receive → executor → apply the outcome.

- Receiver threads long-poll each queue, always asking for up to 10 messages (SQS's batch).
  A queue has one receiver; while it has a backlog (the last receive came back full) and
  tasks finish quickly, up to ``receivers_for(concurrency)`` receivers poll it side by side,
  so as many round trips are in flight as a raw consumer with that many threads has.
- What is fetched waits in a small local buffer for one of the ``concurrency`` task threads.
  The worker fetches only what it can start soon: the free threads, plus what the pool
  finishes during one receive round trip (measured: the running mean of task time and of
  receive time). Slow tasks leave nothing ahead, so messages stay on the queue for other
  workers; no-op tasks get a batch or so ahead per receiver (issue 14). Buffered messages are
  kept invisible by the heartbeat, handed back if no thread takes them within
  ``SLOT_WAIT_SECONDS``, and handed back at once at stop.
- Deletes are batched (10 per call) by acker threads: a full batch goes out at once, a
  partial one after ``ACK_FLUSH_SECONDS``; several batches can be in flight.
- While a task runs, a heartbeat keeps its message invisible, so a short queue visibility
  timeout gives fast recovery from a dead worker without long tasks running twice.
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
import math
import os
import signal
import threading
import time
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING

from cloudq.errors import CloudQError
from cloudq.execution import Action, Executor, Prepared, apply_outcome
from cloudq.health import Health
from cloudq.transports.base import ReceivedMessage

if TYPE_CHECKING:
    from cloudq.app import CloudQ

logger = logging.getLogger(__name__)

#: How long a partial batch of deletes waits for more before it is sent (a full one goes at
#: once): long enough that tasks of a few ms still fill batches (SQS calls per task).
ACK_FLUSH_SECONDS = 0.2
SQS_BATCH = 10
#: After a receive error, wait this long (doubling, capped) before polling again.
RECEIVE_BACKOFF_SECONDS = (0.5, 15.0)
#: SQS keeps a received message invisible for at most 12 hours in all.
SQS_MAX_VISIBILITY_SECONDS = 43_200
#: How long a stopping worker waits for polls in flight to end before abandoning them.
RECEIVER_JOIN_SECONDS = 1.0
#: Longest wait of a received message for a free task thread before it is handed back.
SLOT_WAIT_SECONDS = 2.0
#: Most receivers polling one queue side by side (a backlog and quick tasks needed).
MAX_RECEIVERS_PER_QUEUE = 8
#: Weight of the newest sample in the running means of task time and receive time.
MEAN_WEIGHT = 0.1
#: "Soon": messages fetched ahead of free threads start within about this long (or one
#: receive round trip, if longer), far within ``SLOT_WAIT_SECONDS``.
START_SOON_SECONDS = 0.5
#: How often the heartbeat thread looks for buffered messages waiting too long.
TICK_SECONDS = 0.25


def receivers_for(concurrency: int) -> int:
    """Receivers per queue: a receive round trip of 10 takes longer than running 10 short
    tasks, so one poll in flight per two task threads keeps the pool busy (measured in
    bench/run.py at -c 1, 8 and 16)."""
    return max(1, min(MAX_RECEIVERS_PER_QUEUE, math.ceil(concurrency / 2)))


class _Pace:
    """Running means of the time a task holds its thread and of a receive round trip that
    brought messages: how many messages the pool starts during one receive."""

    def __init__(self) -> None:
        self.task_seconds: float | None = None
        self.receive_seconds: float | None = None

    @staticmethod
    def _mean(mean: float | None, sample: float) -> float:
        return sample if mean is None else mean + MEAN_WEIGHT * (sample - mean)

    def task_done(self, seconds: float) -> None:
        self.task_seconds = self._mean(self.task_seconds, seconds)

    def received(self, seconds: float) -> None:
        self.receive_seconds = self._mean(self.receive_seconds, seconds)

    def ahead(self, concurrency: int, cap: int) -> int:
        """Messages the pool starts soon beyond its free threads (0 until tasks were timed):
        what it finishes during one receive round trip, or ``START_SOON_SECONDS``."""
        task, receive = self.task_seconds, self.receive_seconds
        if task is None or receive is None:
            return 0
        return min(cap, int(concurrency * max(receive, START_SOON_SECONDS) / max(task, 1e-6)))


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
        concurrency: int = 8,
        visibility_timeout: int | None = None,
        wait_seconds: float | None = None,
        grace: float = 25.0,
    ) -> None:
        self.app = app
        self.queues = list(queues or sorted(app.queue_names()))
        self.concurrency = max(1, concurrency)
        self.visibility_timeout = visibility_timeout or app.settings.visibility_timeout or 30
        self.wait_seconds = app.settings.wait_seconds if wait_seconds is None else wait_seconds
        self.grace = grace
        self.executor = Executor(app)
        self.stats = WorkerStats()
        self.receivers = receivers_for(self.concurrency)
        self._pace = _Pace()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        #: Set under ``_lock`` at shutdown: no more messages are started or buffered.
        self._closed = False
        self._lock = threading.Lock()
        #: Task threads wait on ``_work`` for the buffer; receivers on ``_room`` for room.
        self._work = threading.Condition(self._lock)
        self._room = threading.Condition(self._lock)
        #: Fetched, not started yet: (message, when it arrived).
        self._buffer: deque[tuple[ReceivedMessage, float]] = deque()
        self._running: dict[str, _Running] = {}
        #: The last receive of the queue came back full: more receivers may poll it.
        self._backlog: dict[str, bool] = defaultdict(bool)
        self._acks: dict[str, list[str]] = defaultdict(list)
        self._acks_ready = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._health = Health()
        self._warned_long: set[str] = set()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Check the queues exist, then start task threads, receivers, ackers and the heartbeat."""
        self.app.transport.check_queues(self.queues)
        for index in range(self.concurrency):
            self._spawn(self._task_loop, f"cloudq-task-{index}")
        for queue in self.queues:
            for index in range(self.receivers):
                self._spawn(self._receive_loop, f"cloudq-receive-{queue}-{index}", queue, index)
        for index in range(max(1, self.receivers // 2)):
            self._spawn(self._ack_loop, f"cloudq-acker-{index}")
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
        deadline = time.monotonic() + self.grace
        # Unstarted messages go back at once; receivers hand back what their polls still bring.
        self._hand_back(self._take_buffer(close=False))
        # Receivers get a moment to end their polls (a short poll ends within it); one still
        # in a long poll is abandoned.
        join_until = min(deadline, time.monotonic() + RECEIVER_JOIN_SECONDS)
        for thread in self._threads:
            if thread.name.startswith("cloudq-receive"):
                thread.join(timeout=max(0.0, join_until - time.monotonic()))
        while self._running_count() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stopped.set()
        self._hand_back(self._take_buffer(close=True))
        with self._acks_ready:
            self._acks_ready.notify_all()
        self._flush_acks()
        logger.info("worker stopped: %s", self.stats)

    def _take_buffer(self, close: bool) -> list[ReceivedMessage]:
        with self._lock:
            self._closed = self._closed or close
            taken = [message for message, _ in self._buffer]
            self._buffer.clear()
            self._work.notify_all()
        return taken

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
        while not self._stopping.is_set():
            wanted = self._wait_for_room(queue, index)
            if not wanted:
                continue
            started = time.monotonic()
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
            if messages:
                self._pace.received(time.monotonic() - started)
            self._backlog[queue] = len(messages) >= SQS_BATCH
            self._dispatch(messages)

    def _wait_for_room(self, queue: str, index: int) -> int:
        """How many messages to ask for: up to a batch, within what the pool starts soon.
        Receivers after a queue's first poll only while it has a backlog and tasks are quick.
        Slots are counted when messages arrive, not while a poll waits, so a receiver
        long-polling an idle queue never keeps another queue's messages from free threads."""

        def room() -> int:
            ahead = self._pace.ahead(self.concurrency, SQS_BATCH * (self.receivers + 1))
            if index and not (self._backlog[queue] and ahead >= SQS_BATCH * index):
                return 0
            return self.concurrency - len(self._running) + ahead - len(self._buffer)

        with self._room:
            found = self._room.wait_for(lambda: room() > 0, timeout=0.2)
            return min(SQS_BATCH, room()) if found else 0

    def _dispatch(self, messages: list[ReceivedMessage]) -> None:
        """Buffer the messages for the task threads, or hand them back when stopping."""
        with self._lock:
            self.stats.received += len(messages)
            accepted = not (self._closed or self._stopping.is_set())
            if accepted and messages:
                arrived = time.monotonic()
                self._buffer.extend((message, arrived) for message in messages)
                self._work.notify(len(messages))
        if not accepted:
            self._hand_back(messages)

    def _hand_back(self, messages: list[ReceivedMessage]) -> None:
        """Make fetched-but-unstarted messages visible again at once (batched per queue)."""
        by_queue: dict[str, list[ReceivedMessage]] = defaultdict(list)
        for message in messages:
            by_queue[message.queue].append(message)
        for queue, some in by_queue.items():
            try:
                self.app.transport.extend_visibility(queue, [m.receipt_handle for m in some], 0)
            except CloudQError as exc:
                logger.warning("could not hand back %d message(s) of %s: %s", len(some), queue, exc)
        with self._lock:
            self.stats.handed_back += len(messages)

    # -- running -------------------------------------------------------------------------

    def _task_timeout(self, prepared: Prepared) -> float | None:
        """The timeout of the message's task, for the heartbeat (None if unknown or untimed)."""
        task = prepared.task
        if task is None or task.timeout is None:
            return None
        if task.timeout > SQS_MAX_VISIBILITY_SECONDS and task.name not in self._warned_long:
            self._warned_long.add(task.name)
            logger.warning(
                "task %s has a timeout of %.0f s, past SQS's 12-hour visibility ceiling: its message "
                "will become visible again while it runs; split the work",
                task.name,
                task.timeout,
            )
        return task.timeout

    def _task_loop(self) -> None:
        """One task thread: take a buffered message, run it, apply its outcome."""
        while True:
            message = self._take()
            if message is None:
                return
            started = time.monotonic()
            try:
                self._run(message)
            finally:
                with self._lock:
                    # Off the heartbeat (if the outcome did not already take it off).
                    self._running.pop(message.receipt_handle, None)
                    self._room.notify_all()
                self._pace.task_done(time.monotonic() - started)

    def _take(self) -> ReceivedMessage | None:
        """The next buffered message, now running; ``None`` once the worker is closed. A
        stopping worker starts nothing more."""
        with self._work:
            while not self._closed:
                if self._buffer and not self._stopping.is_set():
                    message, _ = self._buffer.popleft()
                    self._running[message.receipt_handle] = _Running(message, time.monotonic(), None)
                    return message
                self._work.wait(TICK_SECONDS)
        return None

    def _run(self, message: ReceivedMessage) -> None:
        prepared = self.executor.prepare(message)
        running = _Running(message, time.monotonic(), self._task_timeout(prepared))
        with self._lock:
            self._running[message.receipt_handle] = running
        try:
            outcome = self.executor.execute(prepared)
        except Exception:  # a worker never dies of one message; it reappears after visibility
            logger.exception("error handling message %s", message.message_id)
            outcome = None
        finally:
            # Off the heartbeat before the outcome is applied, so an extension cannot
            # overwrite a retry's visibility delay.
            with self._lock:
                self._running.pop(message.receipt_handle, None)
        if outcome is None:
            return
        self._count(outcome.action)
        if outcome.action is Action.ACK:
            with self._acks_ready:
                pending = self._acks[message.queue]
                pending.append(message.receipt_handle)
                if len(pending) >= SQS_BATCH:
                    self._acks_ready.notify()
            return
        try:
            apply_outcome(self.app.transport, prepared, outcome)
        except CloudQError as exc:
            logger.warning("could not apply %s to %s: %s", outcome.action.value, message.message_id, exc)

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
        while True:
            batch = self._next_ack_batch()
            if batch is None:
                return
            self._send_acks(*batch)

    def _next_ack_batch(self) -> tuple[str, list[str]] | None:
        """A full batch of deletes at once, a partial one after ``ACK_FLUSH_SECONDS``;
        ``None`` once stopped (``_shutdown`` flushes the rest)."""
        flush_at = time.monotonic() + ACK_FLUSH_SECONDS
        with self._acks_ready:
            while not self._stopped.is_set():
                late = time.monotonic() >= flush_at
                ready = [q for q, handles in self._acks.items() if len(handles) >= (1 if late else SQS_BATCH)]
                if ready:
                    handles = self._acks[ready[0]]
                    self._acks[ready[0]] = handles[SQS_BATCH:]
                    return ready[0], handles[:SQS_BATCH]
                if late:
                    flush_at = time.monotonic() + ACK_FLUSH_SECONDS
                self._acks_ready.wait(max(0.0, flush_at - time.monotonic()))
        return None

    def _flush_acks(self) -> None:
        with self._acks_ready:
            pending, self._acks = self._acks, defaultdict(list)
        for queue, handles in pending.items():
            for start in range(0, len(handles), SQS_BATCH):
                self._send_acks(queue, handles[start : start + SQS_BATCH])

    def _send_acks(self, queue: str, handles: list[str]) -> None:
        try:
            self.app.transport.ack(queue, handles)
        except CloudQError as exc:
            # Not deleted: the messages reappear and the idempotency claim acks them.
            self._health.failed(f"delete on {queue}", exc)
            return
        self._health.ok(f"delete on {queue}")

    def _heartbeat_loop(self) -> None:
        """Every third of the visibility timeout, extend the messages of running tasks and of
        the buffer (one batched call per queue). A task past its timeout is no longer
        extended: its message reappears and the retry policy takes over. Between beats,
        buffered messages no thread took in time are handed back."""
        interval = max(self.visibility_timeout / 3, 0.5)
        beat_at = time.monotonic() + interval
        while not self._stopped.wait(min(TICK_SECONDS, interval)):
            self._hand_back(self._stale())
            if time.monotonic() < beat_at:
                continue
            beat_at = time.monotonic() + interval
            for queue, handles in self._due_for_extension().items():
                try:
                    self.app.transport.extend_visibility(queue, handles, self.visibility_timeout)
                except CloudQError as exc:
                    self._health.failed(f"heartbeat on {queue}", exc)
                    continue
                self._health.ok(f"heartbeat on {queue}")

    def _stale(self) -> list[ReceivedMessage]:
        """Buffered messages that waited longer than ``SLOT_WAIT_SECONDS`` (oldest first)."""
        waited_since = time.monotonic() - min(SLOT_WAIT_SECONDS, self.visibility_timeout / 3)
        stale = []
        with self._lock:
            while self._buffer and self._buffer[0][1] < waited_since:
                stale.append(self._buffer.popleft()[0])
        return stale

    def _due_for_extension(self) -> dict[str, list[str]]:
        now = time.monotonic()
        due: dict[str, list[str]] = defaultdict(list)
        with self._lock:
            running = list(self._running.values())
            buffered = [message for message, _ in self._buffer]
        for item in running:
            overran = item.timeout is not None and now - item.started > item.timeout
            if not overran:
                due[item.message.queue].append(item.message.receipt_handle)
        for message in buffered:
            due[message.queue].append(message.receipt_handle)
        return due


def _exit_now(code: int) -> None:
    """Exit the process without waiting for task threads still running tasks."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(code)
