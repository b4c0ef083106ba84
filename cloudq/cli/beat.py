"""``cloudq beat``: periodic tasks sent once per tick."""

from __future__ import annotations

import logging

import click

from cloudq.cli.root import APP_OPTION, LOG_FORMAT_OPTION, friendly_errors, main
from cloudq.runtime.logs import configure_logging


@main.command()
@APP_OPTION
@click.option(
    "--catch-up",
    is_flag=True,
    help="Also send the ticks missed while no beat ran (at most 100 per periodic task).",
)
@LOG_FORMAT_OPTION
@click.pass_obj
@friendly_errors
def beat(flags: dict[str, bool], app_reference: str, catch_up: bool, log_format: str) -> None:
    """Send MODULE:APP's periodic tasks on their schedules (where EventBridge Scheduler does
    not). Any number may run at once: each tick is sent once. SIGTERM/SIGINT stop it."""
    import signal
    import threading

    from cloudq.app.loading import load_app
    from cloudq.runtime.beat import Beat

    configure_logging(**flags, log_format=log_format)
    runner = Beat(load_app(app_reference), catch_up=catch_up)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    runner.run(stop)
    logging.getLogger("cloudq.beat").info("cloudq beat stopped: %d tick(s) sent", runner.sent)
