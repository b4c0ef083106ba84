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
    help="Provision this app's queues and table, and deploy its Lambda worker if it has one.",
)
@click.option("--port", default=4566, show_default=True, type=click.IntRange(1, 65535))
@friendly_errors
def up(app_reference: str | None, port: int) -> None:
    """Start the emulator and keep it running until Ctrl-C."""
    import os
    import signal
    import sys
    import time

    from cloudq_emulator.server import MinistackServer

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C, and SIGTERM from a supervisor, stop cleanly (even where SIGINT was ignored).
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    server = MinistackServer(port=port)
    server.start()
    # The app (and the function deployed from here) reach this emulator, whatever was set.
    os.environ.update(server.environment())
    try:
        click.echo(f"emulator: {server.endpoint_url}")
        monitor = _provision_app(app_reference, server.endpoint_url) if app_reference else None
        click.echo(
            f"point boto3 at it: export AWS_ENDPOINT_URL={server.endpoint_url} "
            "AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1"
        )
        click.echo(f"or the AWS CLI:   aws --endpoint-url {server.endpoint_url} sqs list-queues")
        click.echo("Ctrl-C to stop")
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
    except KeyboardInterrupt:
        click.echo("\nstopping")
    finally:
        server.stop()


def _provision_app(app_reference: str, endpoint_url: str) -> Monitor:
    from botocore.exceptions import BotoCoreError, ClientError

    from cloudq_emulator.server import EmulatorError

    try:
        return _provision(app_reference, endpoint_url)
    except (BotoCoreError, ClientError) as exc:
        raise EmulatorError(f"could not set up {app_reference} in the emulator: {exc}") from exc


def _provision(app_reference: str, endpoint_url: str) -> Monitor:
    from cloudq.app import load_app
    from cloudq.infra import app_resources
    from cloudq_emulator.lambda_deploy import deploy_function
    from cloudq_emulator.monitor import Monitor
    from cloudq_emulator.provision import provision

    resources = app_resources(load_app(app_reference), app_reference)
    provision(resources, endpoint_url=endpoint_url)
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
    deployed = deploy_function(resources, endpoint_url=endpoint_url)
    if function is not None and deployed is not None:
        concurrency = function.maximum_concurrency or "default"
        click.echo(
            f"  function {deployed.name}: handler {function.handler}, CLOUDQ_APP={function.app_reference}, "
            f"timeout {function.timeout}s, {function.memory_mb} MB; mappings: batch {function.batch_size}, "
            f"window {function.batching_window}s, max concurrency {concurrency}, ReportBatchItemFailures"
        )
        for warning in deployed.warnings:
            click.echo(f"  warning: {warning}", err=True)
    return Monitor(resources, endpoint_url)
