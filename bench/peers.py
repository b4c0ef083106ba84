"""The peers ``bench/run.py`` drains against (issue 29): Celery, sqs-workers, dramatiq-sqs and
taskiq-aio-sqs, on the same ministack server, through the same counting proxy, at the same
concurrency N as the floors and the cloudq worker.

For each peer, ``fill`` queues N no-op tasks with that peer's own producer (in the parent,
straight to the server, not timed: each library has its own message format) and ``consume``
drains them in a fresh process (``bench/run.py --consume peer:<name>``): it calls ``report``
(the CPU of its process and the time, as the floor does) the moment its count-th task has
finished and its message is deleted, then ends the process. A consumer that has not got there
within ``timeout_seconds`` prints an error line with what it did meanwhile and exits 1: the
bench reports that part, and a slow or broken peer never hangs it. Installed by
``pip install -e '.[bench]'`` (pinned versions in ``pyproject.toml``).

How each is configured: a no-op task, JSON messages, results off, N concurrent consumers in one
process, and otherwise the library's defaults, logging at the level its own command sets when
given no option:

- **Celery 5.6** (kombu's SQS transport): the worker that ``celery worker --pool threads -c N
  -Q <queue> --without-gossip --without-mingle --without-heartbeat`` starts, run in the process
  (``app.worker_main``). The three ``--without`` flags: SQS has no broadcast, and Celery's SQS
  page lists events and remote control as unsupported. The default prefetch multiplier (4:
  up to 4N messages reserved, at most 10 per ReceiveMessage, which kombu sends through its own
  pycurl client in the query protocol), the default early acknowledgement (one DeleteMessage
  per task, when a thread accepts it), ``task_serializer``/``accept_content`` JSON,
  ``task_ignore_result`` and no result backend, log level WARNING (the command's default);
  ``worker_redirect_stdouts`` off, so that the report reaches the bench (it only concerns
  ``print`` in tasks).
- **dramatiq 2.2 + dramatiq-sqs**: one process with N worker threads, the worker that
  ``dramatiq --processes 1 --threads N`` starts; the default middleware (no results), its
  default prefetch (2N, capped at 10 per ReceiveMessage by dramatiq-sqs), one DeleteMessage per
  message, a long poll of 1 s (its worker timeout), JSON (dramatiq's default encoder), logging
  INFO (the command's level without ``-v``).
- **sqs-workers 0.7**: it has no pool: a queue is one receive-run-delete loop
  (``process_queue``), and ``process_queues`` forks one process per queue. Here N threads in one
  process each run that loop, each on its own ``SQSEnv`` (boto3 resources are not thread-safe):
  N concurrent consumers, as for the others, but each runs its batch of 10 one task after the
  other, then deletes it in one DeleteMessageBatch. Codec ``json`` (not its binary
  default), no batching policy, its default long poll (10 s); it has no command, so Python's
  default logging (WARNING).
- **taskiq 0.13 + taskiq-aio-sqs 2.1**: taskiq's ``Receiver`` as each ``taskiq worker`` process
  runs it, with ``--max-async-tasks N`` (N tasks at once on one event loop) in one process (the
  command starts 2 by default); an async no-op task, the dummy result backend (results off), the
  default acknowledgement (once the result is saved: one DeleteMessage per task), JSON (taskiq's
  default serializer), logging INFO (the command's default: one line per task).
  ``max_number_of_messages=10`` instead of its default of 1 (one ReceiveMessage per task), as
  every other consumer here receives up to 10; its default long poll (10 s).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

#: The task every peer runs, under this name.
TASK = "noop"


def timeout_seconds(count: int) -> float:
    """How long a peer may take to drain ``count`` tasks before it stops: 1 minute, plus 10 ms a
    task (beyond, the bench reports the part it drained)."""
    return 60 + count / 100


class Countdown:
    """Counts a consumer's finished tasks: by default one event per task (``deleted``: the
    task ran and its message is deleted), or several, each to be counted ``count`` times. Once
    all are, it reports and ends the process (exit 0) at once: the threads the library runs need
    no stopping. If they are not in time it prints an error line (JSON, on stdout, where the
    bench reads it) and exits 1."""

    def __init__(
        self, count: int, report: Callable[[], None], events: tuple[str, ...] = ("deleted",)
    ) -> None:
        self.count = count
        self.report = report
        self.done = dict.fromkeys(events, 0)
        self._lock = threading.Lock()
        self._started = time.monotonic()
        watchdog = threading.Timer(timeout_seconds(count), self._timed_out)
        watchdog.daemon = True
        watchdog.start()

    def add(self, tasks: int = 1, event: str = "deleted") -> None:
        with self._lock:
            self.done[event] += tasks
            if min(self.done.values()) >= self.count:
                self.report()
                os._exit(0)  # inside the lock: one report, whichever thread gets here first

    def _timed_out(self) -> None:
        """The line of a drain not finished in time: the error, and what it did meanwhile
        (the tasks done, its CPU and the time), which the bench reports as a partial row."""
        import resource

        seconds = time.monotonic() - self._started
        counts = ", ".join(f"{done} {event}" for event, done in self.done.items())
        error = f"timed out: {counts} of {self.count} tasks in {seconds:.0f} s"
        usage = resource.getrusage(resource.RUSAGE_SELF)
        partial = {
            "ran": min(self.done.values()),
            "done": time.time(),
            "cpu": usage.ru_utime + usage.ru_stime,
        }
        print(json.dumps({"error": error, **partial}), flush=True)
        os._exit(1)


def _noop() -> None:
    return None


async def _async_noop() -> None:
    return None


def _proxied(url: str) -> str:
    """The queue's URL on this process's endpoint (the counting proxy in a consumer): kombu
    sends its receives to the queue's URL itself, not to the client's endpoint."""
    return os.environ["AWS_ENDPOINT_URL"].rstrip("/") + urlsplit(url).path


def _queue_url(queue: str) -> str:
    import boto3

    return str(boto3.client("sqs").get_queue_url(QueueName=queue)["QueueUrl"])


# -- Celery ----------------------------------------------------------------------------------


def _celery_app(queue: str, url: str) -> Any:
    from celery import Celery

    options = {"predefined_queues": {queue: {"url": url}}}
    app = Celery("bench", broker="sqs://", broker_transport_options=options)
    app.conf.update(
        task_default_queue=queue,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_backend=None,
        task_ignore_result=True,
        worker_redirect_stdouts=False,
    )
    app.task(name=TASK)(_noop)
    return app


def fill_celery(queue: str, url: str, count: int) -> None:
    app = _celery_app(queue, url)
    task = app.tasks[TASK]
    for _ in range(count):
        task.delay()
    app.close()


def consume_celery(queue: str, count: int, concurrency: int, report: Callable[[], None]) -> None:
    from celery.signals import task_postrun
    from kombu.transport.SQS import Channel

    app = _celery_app(queue, _proxied(_queue_url(queue)))
    # A task is finished once it returned and its message is deleted: the thread that accepts a
    # task only schedules the ack (early ack), which the worker's event loop thread then sends.
    countdown = Countdown(count, report, events=("ran", "deleted"))
    task_postrun.connect(lambda **_: countdown.add(event="ran"), weak=False)
    basic_ack = Channel.basic_ack

    def counted_ack(channel: Any, delivery_tag: Any, multiple: bool = False) -> None:
        basic_ack(channel, delivery_tag, multiple)  # the message's DeleteMessage
        countdown.add(event="deleted")

    Channel.basic_ack = counted_ack
    argv = ["worker", "--pool", "threads", "--concurrency", str(concurrency), "--queues", queue]
    argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    app.worker_main(argv)


# -- dramatiq-sqs ----------------------------------------------------------------------------


def _dramatiq_broker(queue: str) -> Any:
    import dramatiq
    from dramatiq_sqs import SQSBroker

    broker = SQSBroker()  # boto3's configuration from the environment, the default middleware
    dramatiq.actor(actor_name=TASK, queue_name=queue, broker=broker)(_noop)
    return broker


def fill_dramatiq(queue: str, url: str, count: int) -> None:
    actor = _dramatiq_broker(queue).get_actor(TASK)
    for _ in range(count):
        actor.send()


def consume_dramatiq(queue: str, count: int, concurrency: int, report: Callable[[], None]) -> None:
    import dramatiq
    from dramatiq.cli import LOGFORMAT

    logging.basicConfig(level=logging.INFO, format=LOGFORMAT)  # as `dramatiq` without -v
    broker = _dramatiq_broker(queue)
    countdown = Countdown(count, report)

    class Counted(dramatiq.Middleware):
        def after_ack(self, broker: Any, message: Any) -> None:
            countdown.add()  # after the message's DeleteMessage returned

    broker.add_middleware(Counted())
    dramatiq.Worker(broker, worker_threads=concurrency).start()
    threading.Event().wait()


# -- sqs-workers -----------------------------------------------------------------------------


def _sqs_workers_queue(queue: str) -> tuple[Any, Any]:
    from sqs_workers import SQSEnv

    job_queue = SQSEnv(codec="json").queue(queue)
    return job_queue, job_queue.connect_processor(TASK, _noop)


def fill_sqs_workers(queue: str, url: str, count: int) -> None:
    job_queue, task = _sqs_workers_queue(queue)
    with job_queue.add_batch():  # its producer's batches of 10
        for _ in range(count):
            task.delay()


def consume_sqs_workers(queue: str, count: int, concurrency: int, report: Callable[[], None]) -> None:
    countdown = Countdown(count, report)

    class Counted:
        """A shutdown policy that never stops the loop: the library's hook after each batch,
        called once its DeleteMessageBatch returned."""

        def update_state(self, batch_processing_result: Any) -> None:
            if batch_processing_result.succeeded_count():
                countdown.add(batch_processing_result.succeeded_count())

        def need_shutdown(self) -> bool:
            return False

    def loop() -> None:
        job_queue, _ = _sqs_workers_queue(queue)
        job_queue.process_queue(shutdown_policy=Counted())

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    threading.Event().wait()


# -- taskiq-aio-sqs --------------------------------------------------------------------------


def _taskiq_broker(queue: str, **options: Any) -> Any:
    from taskiq_aio_sqs import SQSBroker

    broker = SQSBroker(
        queue,
        endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        max_number_of_messages=10,
        **options,
    )
    broker.task(task_name=TASK)(_async_noop)
    return broker


def fill_taskiq(queue: str, url: str, count: int) -> None:
    import asyncio  # here: the other consumers do not load it

    async def kick() -> None:
        # One SendMessage a task, 10 at a time: with ``enable_batching``, 2.1.1's shutdown()
        # drops the messages its sender is still collecting (none arrived after a prompt one).
        broker = _taskiq_broker(queue)
        await broker.startup()
        task = broker.find_task(TASK)
        for start in range(0, count, 10):
            await asyncio.gather(*(task.kiq() for _ in range(min(10, count - start))))
        await broker.shutdown()

    asyncio.run(kick())


def consume_taskiq(queue: str, count: int, concurrency: int, report: Callable[[], None]) -> None:
    import asyncio  # here: the other consumers do not load it
    from concurrent.futures import ThreadPoolExecutor

    from taskiq.cli.worker.args import WorkerArgs
    from taskiq.receiver import Receiver

    defaults = WorkerArgs(broker="", modules=[])
    logging.basicConfig(level=defaults.log_level.value, format=defaults.log_format)
    countdown = Countdown(count, report)
    broker = _taskiq_broker(queue)
    broker.is_worker_process = True
    build_ack = broker.build_ack_fnx

    def counted_ack(*args: Any, **kwargs: Any) -> Callable[[], Any]:
        ack = build_ack(*args, **kwargs)

        async def counted() -> None:
            await ack()  # the message's DeleteMessage
            countdown.add()

        return counted

    broker.build_ack_fnx = counted_ack

    async def listen() -> None:
        with ThreadPoolExecutor() as executor:  # as the command passes one (for sync tasks)
            receiver = Receiver(broker, executor=executor, max_async_tasks=concurrency)
            await receiver.listen(asyncio.Event())

    asyncio.run(listen())


# -- the registry ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    module: str  #: imported to tell whether the peer is installed
    fill: Callable[[str, str, int], None]
    consume: Callable[[str, int, int, Callable[[], None]], None]

    @property
    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None


PEERS = {
    "celery": Peer("celery", fill_celery, consume_celery),
    "sqs-workers": Peer("sqs_workers", fill_sqs_workers, consume_sqs_workers),
    "dramatiq-sqs": Peer("dramatiq_sqs", fill_dramatiq, consume_dramatiq),
    "taskiq-aio-sqs": Peer("taskiq_aio_sqs", fill_taskiq, consume_taskiq),
}
