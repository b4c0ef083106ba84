"""``cloudq dlq list|replay``: dead-letter queues."""

from __future__ import annotations

import click

from cloudq.cli.root import APP_OPTION, friendly_errors, main
from cloudq.core.errors import ConfigurationError
from cloudq.core.naming import dead_letter_queue_name


@main.group()
def dlq() -> None:
    """Inspect and replay a queue's dead-letter queue."""


@dlq.command(name="list")
@click.argument("queue")
@APP_OPTION
@click.option(
    "--limit", default=50, show_default=True, type=click.IntRange(1, 10_000), help="List at most this many."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@friendly_errors
def dlq_list(queue: str, app_reference: str, limit: int, as_json: bool) -> None:
    """List dead letters of QUEUE (a logical name, e.g. emails) with their reasons."""
    import dataclasses
    import json

    from cloudq.app.loading import load_app
    from cloudq.ops.dead_letters import list_dead_letters

    letters = list_dead_letters(load_app(app_reference), queue, limit)
    for letter in letters:
        if as_json:
            click.echo(json.dumps(dataclasses.asdict(letter)))
        else:
            click.echo(
                f"{letter.message_id}  task={letter.task or '?'} id={letter.task_id or '?'}  {letter.reason}"
            )
    if not as_json:
        click.echo(f"{len(letters)} dead letter(s) in {dead_letter_queue_name(queue)}", err=True)


@dlq.command(name="replay")
@click.argument("queue")
@APP_OPTION
@click.option(
    "--id", "ids", multiple=True, help="Message id or task id to replay (repeatable); default: all."
)
@friendly_errors
def dlq_replay(queue: str, app_reference: str, ids: tuple[str, ...]) -> None:
    """Send dead letters of QUEUE back onto the queue they came from."""
    from cloudq.app.loading import load_app
    from cloudq.ops.dead_letters import replay_dead_letters

    replayed = replay_dead_letters(load_app(app_reference), queue, ids)
    missing = set(ids) - {i for letter in replayed for i in (letter.message_id, letter.task_id)}
    click.echo(f"replayed {len(replayed)} message(s) from {dead_letter_queue_name(queue)}")
    if missing:
        dlq = dead_letter_queue_name(queue)
        raise ConfigurationError(f"not found in {dlq}: {', '.join(sorted(missing))}")


# -- cloudq beat ----------------------------------------------------------------------------
