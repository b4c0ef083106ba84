"""``cloudq infra render``: the app's deployment files."""

from __future__ import annotations

import click

from cloudq.cli.root import APP_OPTION, friendly_errors, main


@main.group()
def infra() -> None:
    """Deployment templates made from the app's task registry."""


@infra.command(name="render")
@APP_OPTION
@click.option(
    "--format",
    "format_name",
    default="cloudformation",
    show_default=True,
    help="cloudformation (YAML template), serverless (serverless.yml) or iam (the policies, JSON).",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
@friendly_errors
def infra_render(app_reference: str, format_name: str, output: str | None) -> None:
    """Render the AWS resources of MODULE:APP: queues, DLQs, table, Lambda, ECS workers, IAM."""
    from pathlib import Path

    from cloudq.app.loading import load_app
    from cloudq.infra import app_resources
    from cloudq.infra.render import render

    text = render(app_resources(load_app(app_reference), app_reference), format_name)
    if output is None:
        click.echo(text, nl=False)
    else:
        Path(output).write_text(text)
