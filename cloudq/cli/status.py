"""``cloudq status``: queues, dead letters and workers at a glance."""

from __future__ import annotations

import click

from cloudq.cli.root import APP_OPTION, friendly_errors, main
from cloudq.core.errors import ConfigurationError


@main.command()
@APP_OPTION
@click.option("--watch", is_flag=True, help="Live view, refreshed every --interval seconds (Ctrl-C stops).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
@click.option(
    "--interval", default=5.0, show_default=True, type=click.FloatRange(min=1), help="--watch refresh."
)
@click.option(
    "--window",
    default=15,
    show_default=True,
    type=click.IntRange(1, 1440),
    help="Minutes of recent outcomes.",
)
@click.option(
    "--metrics",
    "metrics_source",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "cloudwatch", "none"]),
    help="Where outcomes and SQS ages come from: auto reads CloudWatch for SQS on AWS only.",
)
@friendly_errors
def status(
    app_reference: str, watch: bool, as_json: bool, interval: float, window: int, metrics_source: str
) -> None:
    """Queue depths, dead letters, consumers, age of the oldest message and recent outcomes."""
    import json

    from cloudq.app.loading import load_app
    from cloudq.ops.status import StatusReader

    if watch and as_json:
        raise ConfigurationError("--watch and --json do not go together; choose one")
    reader = StatusReader(load_app(app_reference), window_seconds=window * 60, metrics=metrics_source)
    if as_json:
        click.echo(json.dumps(reader.read().as_json()))
        return
    from cloudq.ops import status_view

    if not watch:
        status_view.show(reader.read())
        return
    try:
        status_view.watch(reader, interval)
    except KeyboardInterrupt:
        pass


# -- cloudq infra ---------------------------------------------------------------------------
