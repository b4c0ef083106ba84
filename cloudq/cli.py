"""The ``cloudq`` command line. Thin: parse, call, print.

Exit codes: 0 success, 1 a task failed, 2 a usage or configuration error. A user mistake is
one line on stderr, no traceback (``--debug`` shows it).
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from cloudq.config import MAX_WAIT_SECONDS, WORKER_CONCURRENCY, WORKER_GRACE_SECONDS, WORKER_WAIT_SECONDS
from cloudq.distribution import DISTRIBUTION
from cloudq.errors import CloudQError, ConfigurationError, CredentialsError, QueueNotFoundError
from cloudq.infra.naming import dead_letter_queue_name
from cloudq.logs import LOG_FORMATS, configure_logging

F = TypeVar("F", bound=Callable[..., Any])
logger = logging.getLogger("cloudq.worker")

#: Errors that mean "the user must fix something": exit 2, one line.
USAGE_ERRORS = (ConfigurationError, QueueNotFoundError, CredentialsError)


def friendly_errors(fn: F) -> F:
    """Turn cloudq errors into one line on stderr and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = click.get_current_context().find_root().params.get("debug", False)
        try:
            return fn(*args, **kwargs)
        except CloudQError as exc:
            if debug:
                raise
            click.echo(f"cloudq: error: {exc}", err=True)
            sys.exit(2 if isinstance(exc, USAGE_ERRORS) else 1)

    return wrapper  # type: ignore[return-value]


#: A group called without a command (click >= 8.2 raises this usage error to show its help).
NO_ARGS_IS_HELP: tuple[type[click.UsageError], ...] = tuple(
    getattr(click.exceptions, name) for name in ("NoArgsIsHelpError",) if hasattr(click.exceptions, name)
)


class _OneLineErrors(click.Group):
    """The root command: click's usage errors (a bad option value, a missing argument, an
    unknown command) are one line on stderr and exit code 2, like cloudq's own errors, not
    click's usage block."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except NO_ARGS_IS_HELP as exc:  # a group called alone: its help, as click shows it
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            click.echo(f"cloudq: error: {exc.format_message()}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"cloudq: error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        # Without standalone mode click returns the code of ``--help``/``--version`` (0).
        sys.exit(code if isinstance(code, int) else 0)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), "emulator", *_entry_points()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        """cloudq's own commands, then those of other distributions (``COMMANDS_GROUP``)."""
        return super().get_command(ctx, name) or _command_of(name)


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs (without the AWS SDK's).")
@click.option("--debug-aws", is_flag=True, help="Also show the AWS SDK's wire logs (very verbose).")
@click.version_option(package_name=DISTRIBUTION, message="%(prog)s %(version)s (distribution %(package)s)")
@click.pass_context
def main(ctx: click.Context, debug: bool, debug_aws: bool) -> None:
    """cloudq: a task queue on SQS, DynamoDB and Lambda."""
    ctx.obj = {"debug": debug, "debug_aws": debug_aws}
    configure_logging(debug=debug, debug_aws=debug_aws)


LOG_FORMAT_OPTION = click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default="text",
    show_default=True,
    envvar="CLOUDQ_LOG_FORMAT",
    help="json: one object per line, with task_id and task_name (or CLOUDQ_LOG_FORMAT).",
)


def _split(value: str | None) -> list[str] | None:
    return [part.strip() for part in value.split(",") if part.strip()] if value else None


@main.command()
@click.argument("app_reference", metavar="MODULE:APP")
@click.option("-Q", "--queues", help="Comma-separated logical queues (default: all of the app's).")
@click.option(
    "-c", "--concurrency", default=WORKER_CONCURRENCY, show_default=True, type=click.IntRange(1, 1024)
)
@click.option(
    "--visibility-timeout",
    type=click.IntRange(min=1),
    help="Seconds a received message stays hidden (heartbeat extends it; at most the broker's limit).",
)
@click.option(
    "--wait",
    "wait_seconds",
    type=click.FloatRange(0, MAX_WAIT_SECONDS),
    help=f"Long-poll wait (0-20 s; default: the wait_seconds setting, {WORKER_WAIT_SECONDS:g}).",
)
@click.option(
    "--processes",
    default=1,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Worker processes, each with -c threads; a hung process is killed and replaced.",
)
@click.option(
    "--grace",
    default=WORKER_GRACE_SECONDS,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds running tasks get to finish on SIGTERM.",
)
@LOG_FORMAT_OPTION
@click.pass_obj
@friendly_errors
def worker(
    flags: dict[str, bool],
    app_reference: str,
    queues: str | None,
    concurrency: int,
    visibility_timeout: int | None,
    wait_seconds: float | None,
    processes: int,
    grace: float,
    log_format: str,
) -> None:
    """Run a long-polling worker for MODULE:APP (e.g. shop.tasks:app)."""
    from cloudq.loading import load_app
    from cloudq.options import WorkerOptions
    from cloudq.worker import Worker

    # A line per task: written in batches (cloudq.logs.BatchedStreamHandler).
    logging_options: dict[str, Any] = {**flags, "log_format": log_format, "batched": True}
    configure_logging(**logging_options)

    app = load_app(app_reference)
    chosen = _split(queues)
    unknown = set(chosen or ()) - app.queue_names()
    if unknown:
        known = ", ".join(sorted(app.queue_names()))
        raise ConfigurationError(f"unknown queue(s) {', '.join(sorted(unknown))}; app queues: {known}")
    options = WorkerOptions.build(
        chosen,
        concurrency=concurrency,
        visibility_timeout=visibility_timeout,
        wait_seconds=wait_seconds,
        grace=grace,
    )
    runner = Worker(app, options=options)
    logger.info(
        "cloudq worker: app %s, queues %s, %d process(es) x %d threads, broker %s (%s)",
        app.name,
        ", ".join(runner.queues),
        processes,
        concurrency,
        app.settings.broker,
        app.transport.describe(),
    )
    if processes == 1:
        runner.run()
        # Releases the broker: RabbitMQ gets back the deliveries never handed out without
        # raising their delivery count (a closing connection would).
        app.transport.close()
        return
    from cloudq.supervisor import Supervisor

    app.transport.check_queues(runner.queues)  # one clear error here, not one per child
    Supervisor(app_reference, processes, options, logging_options=logging_options).run()


@main.command()
@click.option(
    "--app",
    "app_reference",
    default="examples.shop.tasks:app",
    show_default=True,
    metavar="MODULE:APP",
)
@click.option("-n", "--tasks", "count", default=200, show_default=True, type=click.IntRange(1, 100_000))
@click.option("-c", "--concurrency", default=16, show_default=True, type=click.IntRange(1, 1024))
@click.option("--broker", help="Broker URL for the demo (default: SQS on the embedded emulator).")
@friendly_errors
def demo(app_reference: str, count: int, concurrency: int, broker: str | None) -> None:
    """Run the example app end to end on the embedded emulator: enqueue, work, fetch, check."""
    demo_module = _emulator_module("cloudq_emulator.demo")
    ok = demo_module.run_demo(app_reference, count=count, concurrency=concurrency, broker=broker)
    sys.exit(0 if ok else 1)


APP_OPTION = click.option(
    "--app",
    "app_reference",
    envvar="CLOUDQ_APP",
    required=True,
    metavar="MODULE:APP",
    help="The app whose queue this is (or CLOUDQ_APP).",
)


@main.group()
def dlq() -> None:
    """Inspect and replay a queue's dead-letter queue."""


@dlq.command(name="list")
@click.argument("queue")
@APP_OPTION
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@friendly_errors
def dlq_list(queue: str, app_reference: str, limit: int, as_json: bool) -> None:
    """List dead letters of QUEUE (a logical name, e.g. emails) with their reasons."""
    import dataclasses
    import json

    from cloudq.dead_letters import list_dead_letters
    from cloudq.loading import load_app

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
    from cloudq.dead_letters import replay_dead_letters
    from cloudq.loading import load_app

    replayed = replay_dead_letters(load_app(app_reference), queue, ids)
    missing = set(ids) - {i for letter in replayed for i in (letter.message_id, letter.task_id)}
    click.echo(f"replayed {len(replayed)} message(s) from {dead_letter_queue_name(queue)}")
    if missing:
        dlq = dead_letter_queue_name(queue)
        raise ConfigurationError(f"not found in {dlq}: {', '.join(sorted(missing))}")


# -- cloudq beat ----------------------------------------------------------------------------


@main.command()
@APP_OPTION
@click.option(
    "--catch-up",
    is_flag=True,
    help="Also send the ticks missed while no beat ran (at most 100 per periodic task).",
)
@LOG_FORMAT_OPTION
@click.pass_obj
@friendly_errors
def beat(flags: dict[str, bool], app_reference: str, catch_up: bool, log_format: str) -> None:
    """Send MODULE:APP's periodic tasks on their schedules (where EventBridge Scheduler does
    not). Any number may run at once: each tick is sent once. SIGTERM/SIGINT stop it."""
    import signal
    import threading

    from cloudq.beat import Beat
    from cloudq.loading import load_app

    configure_logging(**flags, log_format=log_format)
    runner = Beat(load_app(app_reference), catch_up=catch_up)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    runner.run(stop)
    logging.getLogger("cloudq.beat").info("cloudq beat stopped: %d tick(s) sent", runner.sent)


@main.command()
@click.argument("task_ids", metavar="ID", nargs=-1, required=True)
@APP_OPTION
@friendly_errors
def revoke(task_ids: tuple[str, ...], app_reference: str) -> None:
    """Revoke tasks by id: one that has not started (or waits for a retry) is acknowledged
    without running when its message arrives. Exit 1 if one had already finished."""
    from cloudq.loading import load_app

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

    from cloudq.loading import load_app
    from cloudq.status import StatusReader

    if watch and as_json:
        raise ConfigurationError("--watch and --json do not go together; choose one")
    reader = StatusReader(load_app(app_reference), window_seconds=window * 60, metrics=metrics_source)
    if as_json:
        click.echo(json.dumps(reader.read().as_json()))
        return
    from cloudq import status_view

    if not watch:
        status_view.show(reader.read())
        return
    try:
        status_view.watch(reader, interval)
    except KeyboardInterrupt:
        pass


# -- cloudq infra ---------------------------------------------------------------------------


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

    from cloudq.infra import app_resources
    from cloudq.infra.render import render
    from cloudq.loading import load_app

    text = render(app_resources(load_app(app_reference), app_reference), format_name)
    if output is None:
        click.echo(text, nl=False)
    else:
        Path(output).write_text(text)


# -- commands of other distributions -------------------------------------------------------

#: The entry-point group through which another distribution adds a command (the emulator:
#: ``cloudq emulator``). A command is loaded only when called or listed, never when this module
#: is imported, so the two modules never import each other half-initialised.
COMMANDS_GROUP = "cloudq.commands"
#: What ``cloudq emulator`` and ``cloudq demo`` say when the emulator is not installed.
EMULATOR_MISSING = (
    f"the emulator is not installed; pip install '{DISTRIBUTION}[emulator]' "
    "(in this repo: pip install -e ./emulator)"
)


def _emulator_module(name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("cloudq_emulator"):
            raise ConfigurationError(EMULATOR_MISSING) from None
        raise


def _entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {point.name: point for point in entry_points(group=COMMANDS_GROUP)}


def _command_of(name: str) -> click.Command | None:
    """The command ``name`` of another distribution; when the emulator's is not installed (or
    its module is gone), one that says how to install it."""
    point = _entry_points().get(name)
    if point is not None:
        try:
            command = point.load()
        except ModuleNotFoundError as exc:
            top = (exc.name or "").partition(".")[0]
            if not top or point.module.partition(".")[0] != top:
                raise  # a dependency of an installed command is missing: its own error
        else:
            if not isinstance(command, click.Command):
                raise ConfigurationError(
                    f"entry point {point.value!r} ({COMMANDS_GROUP}) is not a click command"
                )
            return command
    return _emulator_missing if name == "emulator" else None


@click.command(name="emulator", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@friendly_errors
def _emulator_missing(args: tuple[str, ...]) -> None:
    """Local AWS (needs the emulator: the 'emulator' extra)."""
    raise ConfigurationError(EMULATOR_MISSING)
