"""The root of the ``cloudq`` command line: the group, one-line errors, shared options, and
the commands other distributions add (the emulator).

Exit codes: 0 success, 1 a task failed, 2 a usage or configuration error. A user mistake is
one line on stderr, no traceback (``--debug`` shows it).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from cloudq.core.distribution import DISTRIBUTION
from cloudq.core.errors import CloudQError, ConfigurationError, CredentialsError, QueueNotFoundError
from cloudq.runtime.logs import LOG_FORMATS, configure_logging

F = TypeVar("F", bound=Callable[..., Any])

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


def split_option(value: str | None) -> list[str] | None:
    return [part.strip() for part in value.split(",") if part.strip()] if value else None


APP_OPTION = click.option(
    "--app",
    "app_reference",
    envvar="CLOUDQ_APP",
    required=True,
    metavar="MODULE:APP",
    help="The app, as module:attribute, e.g. shop.tasks:app (or CLOUDQ_APP).",
)


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


def emulator_module(name: str) -> Any:
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


#: ``--metrics``, shared by ``cloudq status`` and ``cloudq dashboard``.
METRICS_OPTION = click.option(
    "--metrics",
    "metrics_source",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "cloudwatch", "none"]),
    help="Where outcomes and SQS ages come from: auto reads CloudWatch for SQS on AWS only.",
)
