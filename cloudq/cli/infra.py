"""``cloudq infra render``: the app's deployment files."""

from __future__ import annotations

import click

from cloudq.cli.root import APP_OPTION, friendly_errors, main
from cloudq.infra.package import PYTHON_VERSIONS


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


@infra.command(name="package")
@APP_OPTION
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Write the zip here [default: dist/APP-lambda.zip].",
)
@click.option(
    "--python",
    "python",
    type=click.Choice(PYTHON_VERSIONS),
    default=PYTHON_VERSIONS[0],
    show_default=True,
    help="The Lambda runtime's Python: the wheels and the bytecode are made for it.",
)
@click.option(
    "--requirements",
    type=click.Path(dir_okay=False),
    help="What the tasks import besides cloudq (pip's requirements file), installed for Lambda.",
)
@click.option("--include-boto3", is_flag=True, help="Ship boto3/botocore too (the runtime has its own).")
@friendly_errors
def infra_package(
    app_reference: str, output: str | None, python: str, requirements: str | None, include_boto3: bool
) -> None:
    """Build the Lambda function's zip of MODULE:APP from what is installed: the app's package,
    cloudq, pydantic and the requirements for Lambda's platform, bytecode. The rendered
    serverless.yml deploys it; CloudFormation takes it as CodeS3Key."""
    from cloudq.app.loading import load_app
    from cloudq.infra.package import build_package, default_artifact

    app = load_app(app_reference)  # an app that does not load is refused before anything is built
    path = output or default_artifact(app.name)
    report = build_package(
        app_reference, path, python=python, requirements=requirements, include_boto3=include_boto3
    )
    click.echo(report.summary())
