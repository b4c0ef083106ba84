"""``cloudq emulator …``: local AWS for an app. Heavy imports happen inside the commands."""

from __future__ import annotations

import click

from cloudq.cli import friendly_errors


@click.group()
def emulator() -> None:
    """Local AWS (ministack on 127.0.0.1): queues, result table, no account, no Docker."""


@emulator.command()
@click.option("--app", "app_reference", metavar="MODULE:APP", help="Provision this app's queues and table.")
@click.option("--port", default=4566, show_default=True, type=click.IntRange(1, 65535))
@friendly_errors
def up(app_reference: str | None, port: int) -> None:
    """Start the emulator and keep it running until Ctrl-C."""
    import threading

    from cloudq.app import load_app
    from cloudq.infra import app_resources
    from cloudq_emulator.provision import provision
    from cloudq_emulator.server import MinistackServer

    server = MinistackServer(port=port)
    server.start()
    try:
        click.echo(f"emulator: {server.endpoint_url}")
        if app_reference:
            resources = app_resources(load_app(app_reference))
            provision(resources, endpoint_url=server.endpoint_url)
            for queue in resources.queues:
                click.echo(f"  queue {queue.name} (dead-letter {queue.dead_letter_name})")
            if resources.table:
                click.echo(f"  table {resources.table.name}")
        click.echo(
            f"point boto3 at it: export AWS_ENDPOINT_URL={server.endpoint_url} "
            "AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1"
        )
        click.echo("Ctrl-C to stop")
        threading.Event().wait()
    except KeyboardInterrupt:
        click.echo("stopping")
    finally:
        server.stop()
