"""``cloudq worker``: a long-polling worker, or several processes under a supervisor."""

from __future__ import annotations

import logging
from typing import Any

import click

from cloudq.cli.root import LOG_FORMAT_OPTION, friendly_errors, main, split_option
from cloudq.core.config import MAX_WAIT_SECONDS, WORKER_CONCURRENCY, WORKER_GRACE_SECONDS, WORKER_WAIT_SECONDS
from cloudq.core.errors import ConfigurationError
from cloudq.runtime.logs import configure_logging

# The worker's start-up line goes to the worker's logger.
logger = logging.getLogger("cloudq.worker")


@main.command()
@click.argument("app_reference", metavar="MODULE:APP")
@click.option("-Q", "--queues", help="Comma-separated logical queues (default: all of the app's).")
@click.option(
    "-c",
    "--concurrency",
    default=WORKER_CONCURRENCY,
    show_default=True,
    type=click.IntRange(1, 1024),
    help="Threads running tasks (in each process).",
)
@click.option(
    "--visibility-timeout",
    type=click.IntRange(min=1),
    help="Seconds a received message stays hidden (heartbeat extends it; at most the broker's limit).",
)
@click.option(
    "--wait",
    "wait_seconds",
    type=click.FloatRange(0, MAX_WAIT_SECONDS),
    help=f"Long-poll wait (0-20 s; default: the wait_seconds setting, {WORKER_WAIT_SECONDS:g}).",
)
@click.option(
    "--processes",
    default=1,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Worker processes, each with -c threads; a hung process is killed and replaced.",
)
@click.option(
    "--grace",
    default=WORKER_GRACE_SECONDS,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds running tasks get to finish on SIGTERM.",
)
@click.option(
    "--lanes",
    help="How threads pick between priority lanes: strict (default: the lanes setting) or "
    "weighted:H:L (H high runs, then L default runs).",
)
@LOG_FORMAT_OPTION
@click.pass_obj
@friendly_errors
def worker(
    flags: dict[str, bool],
    app_reference: str,
    queues: str | None,
    concurrency: int,
    visibility_timeout: int | None,
    wait_seconds: float | None,
    processes: int,
    grace: float,
    lanes: str | None,
    log_format: str,
) -> None:
    """Run a long-polling worker for MODULE:APP (e.g. shop.tasks:app)."""
    from cloudq.app.loading import load_app
    from cloudq.options import WorkerOptions
    from cloudq.worker import Worker

    # A line per task: written in batches (cloudq.runtime.logs.BatchedStreamHandler).
    logging_options: dict[str, Any] = {**flags, "log_format": log_format, "batched": True}
    configure_logging(**logging_options)

    app = load_app(app_reference)
    chosen = split_option(queues)
    unknown = set(chosen or ()) - app.queue_names()
    if unknown:
        known = ", ".join(sorted(app.queue_names()))
        raise ConfigurationError(f"unknown queue(s) {', '.join(sorted(unknown))}; app queues: {known}")
    options = WorkerOptions.build(
        chosen,
        concurrency=concurrency,
        visibility_timeout=visibility_timeout,
        wait_seconds=wait_seconds,
        grace=grace,
        lanes=lanes,
    )
    runner = Worker(app, options=options)
    logger.info(
        "cloudq worker: app %s, queues %s, %d process(es) x %d threads, broker %s (%s)",
        app.name,
        ", ".join(runner.queues),
        processes,
        concurrency,
        app.settings.broker,
        app.transport.describe(),
    )
    if processes == 1:
        runner.run()
        # Releases the broker: RabbitMQ gets back the deliveries never handed out without
        # raising their delivery count (a closing connection would).
        app.transport.close()
        return
    from cloudq.runtime.supervisor import Supervisor

    app.transport.check_queues(runner.queues)  # one clear error here, not one per child
    Supervisor(app_reference, processes, options, logging_options=logging_options).run()
