"""``cloudq revoke``: results and their states."""

from __future__ import annotations

import sys

import click

from cloudq.cli.root import APP_OPTION, friendly_errors, main
from cloudq.core.errors import ConfigurationError


@main.command()
@click.argument("task_ids", metavar="ID", nargs=-1, required=True)
@APP_OPTION
@friendly_errors
def revoke(task_ids: tuple[str, ...], app_reference: str) -> None:
    """Revoke tasks by id: one that has not started (or waits for a retry) is acknowledged
    without running when its message arrives. Exit 1 if one had already finished."""
    from cloudq.app.loading import load_app

    app = load_app(app_reference)
    finished = []
    for task_id in task_ids:
        if not task_id.strip():
            raise ConfigurationError("a task id must not be empty")
        if app.AsyncResult(task_id).revoke():
            click.echo(f"revoked {task_id}")
        else:
            finished.append(f"{task_id} ({app.AsyncResult(task_id).state})")
    if finished:
        click.echo(f"cloudq: already finished, not revoked: {', '.join(finished)}", err=True)
        sys.exit(1)


# -- cloudq status --------------------------------------------------------------------------
