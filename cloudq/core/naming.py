"""Physical names: the one owner of how a logical queue, its dead-letter queue and the result
table are named, and of the inverse lookup from an ARN. Transports, backends, the CLI, the
Lambda adapter and the resource model (``cloudq.infra.model``) call these; nothing else builds
a name. No imports from the rest of cloudq: everything may import this module."""

from __future__ import annotations

from collections.abc import Collection

#: A queue whose name ends in ``.fifo`` is a FIFO queue (as on SQS).
FIFO_SUFFIX = ".fifo"
DEAD_LETTER_SUFFIX = "-dlq"
RESULTS_SUFFIX = "-results"
#: Priority lanes: ``apply_async(priority="high")`` sends to the queue's sibling named with
#: the lane's suffix (``emails`` → ``emails-high``); ``"default"`` (or ``None``) is the queue.
HIGH_LANE = "high"
DEFAULT_LANE = "default"
LANES = (HIGH_LANE, DEFAULT_LANE)
LANE_SUFFIXES = {HIGH_LANE: "-high"}
#: A queue's visibility timeout when nothing sets one (SQS's own default, which the rendered
#: templates keep); the memory and Redis engines and the worker assume it too.
DEFAULT_VISIBILITY_TIMEOUT = 30


def is_fifo(queue: str) -> bool:
    """A queue whose name ends in ``.fifo`` is a FIFO queue (as on SQS)."""
    return queue.endswith(FIFO_SUFFIX)


def dead_letter_queue_name(queue: str) -> str:
    """``emails`` → ``emails-dlq``; ``orders.fifo`` → ``orders-dlq.fifo`` (SQS requires a FIFO
    queue's dead-letter queue to be FIFO too)."""
    if is_fifo(queue):
        return queue[: -len(FIFO_SUFFIX)] + DEAD_LETTER_SUFFIX + FIFO_SUFFIX
    return queue + DEAD_LETTER_SUFFIX


def is_dead_letter_queue(queue: str) -> bool:
    """Whether ``queue`` is named as a dead-letter queue (``dead_letter_queue_name``'s output)."""
    base = queue[: -len(FIFO_SUFFIX)] if is_fifo(queue) else queue
    return base.endswith(DEAD_LETTER_SUFFIX)


def lane_queue_name(queue: str, lane: str | None) -> str:
    """The queue of ``lane``: ``emails`` → ``emails-high``; ``orders.fifo`` →
    ``orders-high.fifo`` (still FIFO); the default lane (``None``) is ``queue`` itself."""
    if lane is None or lane == DEFAULT_LANE:
        return queue
    suffix = LANE_SUFFIXES[lane]
    if is_fifo(queue):
        return queue[: -len(FIFO_SUFFIX)] + suffix + FIFO_SUFFIX
    return queue + suffix


def lane_of(queue: str) -> tuple[str, str]:
    """``lane_queue_name``'s inverse: ``emails-high`` → (``emails``, ``high``); a queue of no
    lane suffix is its own default lane."""
    base = queue[: -len(FIFO_SUFFIX)] if is_fifo(queue) else queue
    for lane, suffix in LANE_SUFFIXES.items():
        if base.endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)] + (FIFO_SUFFIX if is_fifo(queue) else ""), lane
    return queue, DEFAULT_LANE


def is_celery_queue(queue: str, celery_queues: Collection[str]) -> bool:
    """Whether ``queue`` is one of ``celery_queues`` (a queue Celery keeps under its own name,
    setting ``celery_queues``) or the dead-letter queue of one."""
    if queue in celery_queues:
        return True
    if not is_dead_letter_queue(queue):
        return False
    base = queue[: -len(FIFO_SUFFIX)] if is_fifo(queue) else queue
    served = base[: -len(DEAD_LETTER_SUFFIX)] + (FIFO_SUFFIX if is_fifo(queue) else "")
    return served in celery_queues


def physical_name(prefix: str, queue: str, celery_queues: Collection[str] = ()) -> str:
    """What an engine calls ``queue``: its name with the app's prefix (``shop-emails``),
    except a Celery queue and its dead-letter queue, which keep their own names (``celery``,
    ``celery-dlq``) so that cloudq and Celery workers serve the same queue."""
    return queue if is_celery_queue(queue, celery_queues) else prefix + queue


def queue_prefix(app_name: str) -> str:
    """What every physical queue name of app ``shop`` starts with: ``shop-``."""
    return f"{app_name}-"


def physical_queue_name(app_name: str, queue: str, celery_queues: Collection[str] = ()) -> str:
    """``emails`` of app ``shop`` is queue ``shop-emails`` (SQS, Redis keys, RabbitMQ); a
    Celery queue keeps its name (``physical_name``)."""
    return physical_name(queue_prefix(app_name), queue, celery_queues)


def results_table_name(app_name: str) -> str:
    """The default result table of app ``shop``: ``shop-results``."""
    return app_name + RESULTS_SUFFIX


def logical_queue_from_arn(app_name: str, arn: str) -> str:
    """``arn:aws:sqs:us-east-1:123:shop-emails`` → ``emails`` for app ``shop`` (a queue of
    another app keeps its full name)."""
    physical = arn.rsplit(":", 1)[-1]
    prefix = queue_prefix(app_name)
    return physical[len(prefix) :] if physical.startswith(prefix) else physical


def delay_queue_name(physical: str, seconds: int) -> str:
    """RabbitMQ: the queue holding ``physical``'s messages delayed by ``seconds``."""
    return f"{physical}.delay-{seconds}s"


def schedule_group_name(app_name: str) -> str:
    """The EventBridge Scheduler schedule group of app ``shop``'s run-time schedules:
    ``shop-cloudq`` (group names take letters, digits, ``-``, ``_`` and ``.``)."""
    return f"{app_name}-cloudq"
