"""``cloudq status``: queues, dead letters and workers at a glance."""

from __future__ import annotations

from typing import Any

import click

from cloudq.cli.root import APP_OPTION, METRICS_OPTION, friendly_errors, main
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
@METRICS_OPTION
@click.option(
    "--cost",
    is_flag=True,
    help="The app's cost per million tasks and idle cost per day, from CloudWatch over --window.",
)
@friendly_errors
def status(
    app_reference: str,
    watch: bool,
    as_json: bool,
    interval: float,
    window: int,
    metrics_source: str,
    cost: bool,
) -> None:
    """Queue depths, dead letters, consumers, age of the oldest message and recent outcomes."""
    import json

    from cloudq.app.loading import load_app
    from cloudq.ops.status import StatusReader

    if watch and as_json:
        raise ConfigurationError("--watch and --json do not go together; choose one")
    if watch and cost:
        raise ConfigurationError("--watch and --cost do not go together; choose one")
    if cost:
        _show_cost(load_app(app_reference), window * 60, metrics_source, as_json)
        return
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


def _show_cost(app: Any, window_seconds: int, metrics_source: str, as_json: bool) -> None:
    import json

    from cloudq.ops.cost import read_cost
    from cloudq.ops.status_text import cost_text

    if metrics_source == "none":
        report: Any = "n/a: --metrics none (the cost is read from CloudWatch)"
    else:
        report = read_cost(app, window_seconds)
    if as_json:
        click.echo(json.dumps(report.as_json() if not isinstance(report, str) else {"note": report}))
        return
    for line in cost_text(report):
        click.echo(line)


# -- cloudq infra ---------------------------------------------------------------------------
