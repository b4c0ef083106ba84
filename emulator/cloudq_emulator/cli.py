"""``cloudq emulator …``: local AWS for an app. Heavy imports happen inside the commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from cloudq.cli import friendly_errors

if TYPE_CHECKING:
    from cloudq_emulator.monitor import Monitor

#: Seconds between two refreshes of the live line.
REFRESH_SECONDS = 1.0


@click.group()
def emulator() -> None:
    """Local AWS (ministack on 127.0.0.1): queues, result table, Lambda; no account, no Docker."""


@emulator.command()
@click.option(
    "--app",
    "app_reference",
    metavar="MODULE:APP",
    help="Deploy this app's rendered template (queues, table, Lambda worker) as a stack.",
)
@click.option(
    "--artifact",
    type=click.Path(exists=True, dir_okay=False),
    help="Deploy this zip of `cloudq infra package` as the function [default: build it now].",
)
@click.option(
    "--port", default=4566, show_default=True, type=click.IntRange(1, 65535), help="Port on 127.0.0.1."
)
@friendly_errors
def up(app_reference: str | None, artifact: str | None, port: int) -> None:
    """Start the emulator and keep it running until Ctrl-C. Its state is in memory: stopping it
    forgets every queue, message, table and function.

    Against an emulator already running on --port, deploy (update) the app's stack and exit.
    """
    import os
    import signal

    from cloudq_emulator.server import MinistackServer

    server = MinistackServer(port=port)
    if app_reference and server.running():
        os.environ.update(server.environment())
        _provision_app(app_reference, server.endpoint_url, artifact)
        click.echo(f"updated the stack of {app_reference} in the emulator at {server.endpoint_url}")
        return

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C, and SIGTERM from a supervisor, stop cleanly (even where SIGINT was ignored).
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    server.start()
    # The app (and the function deployed from here) reach this emulator, whatever was set.
    os.environ.update(server.environment())
    try:
        click.echo(f"emulator: {server.endpoint_url} (state in memory: Ctrl-C forgets it)")
        monitor = _provision_app(app_reference, server.endpoint_url, artifact) if app_reference else None
        click.echo(
            f"point boto3 at it: export AWS_ENDPOINT_URL={server.endpoint_url} "
            "AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1"
        )
        click.echo(f"or the AWS CLI:   aws --endpoint-url {server.endpoint_url} sqs list-queues")
        click.echo("Ctrl-C to stop")
        _watch(monitor)
    except KeyboardInterrupt:
        click.echo("\nstopping")
    finally:
        server.stop()


def _watch(monitor: Monitor | None) -> None:
    """Refresh the live line until interrupted."""
    import sys
    import time

    live = sys.stdout.isatty()
    shown = ""
    while True:
        time.sleep(REFRESH_SECONDS)
        if monitor is None:
            continue
        line = monitor.line()
        if live:
            click.echo(f"\r\x1b[2K{line}", nl=False)
        elif line != shown:
            click.echo(line)
        shown = line


def _provision_app(app_reference: str, endpoint_url: str, artifact: str | None) -> Monitor:
    from botocore.exceptions import BotoCoreError, ClientError

    from cloudq_emulator.server import EmulatorError

    try:
        return _provision(app_reference, endpoint_url, artifact)
    except (BotoCoreError, ClientError) as exc:
        raise EmulatorError(f"could not set up {app_reference} in the emulator: {exc}") from exc


def _provision(app_reference: str, endpoint_url: str, artifact: str | None) -> Monitor:
    from cloudq.app.loading import load_app
    from cloudq.infra import app_resources
    from cloudq_emulator.monitor import Monitor
    from cloudq_emulator.provision import provision

    resources = app_resources(load_app(app_reference), app_reference)
    deployment = provision(resources, endpoint_url=endpoint_url, artifact=artifact)
    click.echo(f"  stack {deployment.stack_name}: {len(deployment.physical_ids)} resources")
    function = resources.function
    for queue in resources.queues:
        to = (
            f" → Lambda {function.function_name}"
            if function and queue.logical_name in function.queues
            else ""
        )
        click.echo(
            f"  queue {queue.name} (dead-letter {queue.dead_letter_name}, "
            f"visibility {queue.visibility_timeout}s){to}"
        )
    if resources.table:
        click.echo(f"  table {resources.table.name}")
    if function is not None:
        concurrency = function.maximum_concurrency or "default"
        click.echo(
            f"  function {function.function_name}: handler {function.handler}, "
            f"CLOUDQ_APP={function.app_reference}, timeout {function.timeout}s, {function.memory_mb} MB; "
            f"mappings: batch {function.batch_size}, window {function.batching_window}s, "
            f"max concurrency {concurrency}, ReportBatchItemFailures"
        )
    for warning in deployment.warnings:
        click.echo(f"  warning: {warning}", err=True)
    return Monitor(resources, endpoint_url)
