"""``cloudq schedules list|delete``: the app's schedules made at run time (``app.schedules``)."""

from __future__ import annotations

import click

from cloudq.cli.root import APP_OPTION, friendly_errors, main
from cloudq.core.errors import ConfigurationError


@main.group()
def schedules() -> None:
    """List and delete the schedules an app made at run time (app.schedules.create)."""


@schedules.command(name="list")
@APP_OPTION
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@friendly_errors
def schedules_list(app_reference: str, as_json: bool) -> None:
    """List MODULE:APP's run-time schedules: name, expression, task, queue, arguments."""
    import json

    from cloudq.app.loading import load_app

    app = load_app(app_reference)
    found = app.schedules.list()
    for periodic in found:
        schedule = periodic.schedule
        if as_json:
            fields = {
                "name": periodic.name,
                "expression": schedule.expression,
                "timezone": schedule.timezone,
                "task": periodic.task,
                "queue": periodic.queue,
                "args": periodic.args,
                "kwargs": periodic.kwargs,
            }
            click.echo(json.dumps(fields))
        else:
            arguments = json.dumps({"args": periodic.args, "kwargs": periodic.kwargs})
            click.echo(
                f"{periodic.name}  {schedule.expression} {schedule.timezone}  "
                f"task={periodic.task} queue={periodic.queue}  {arguments}"
            )
    if not as_json:
        click.echo(f"{len(found)} schedule(s) in {app.schedules.store} of app {app.name}", err=True)


@schedules.command(name="delete")
@click.argument("names", nargs=-1, required=True)
@APP_OPTION
@friendly_errors
def schedules_delete(names: tuple[str, ...], app_reference: str) -> None:
    """Delete the run-time schedules NAMES of MODULE:APP."""
    from cloudq.app.loading import load_app

    app = load_app(app_reference)
    missing = [name for name in names if not app.schedules.delete(name)]
    click.echo(f"deleted {len(names) - len(missing)} schedule(s)")
    if missing:
        raise ConfigurationError(f"no schedule named {', '.join(missing)} in app {app.name}")
