"""The generated references of the docs site, as a MkDocs hook (``hooks:`` in mkdocs.yml).

- ``<!-- settings-table -->`` becomes the table of every field of ``cloudq.core.config.Settings``
  (the one settings definition): its name, ``CLOUDQ_*`` variable, default and the ``#:``
  comment above it.
- ``<!-- cli-reference -->`` becomes every command of the ``cloudq`` click group (the emulator's
  included, when it is installed): its help, usage and options.

``tests/unit/test_docs_reference.py`` fails when a setting, a command or an option has no text.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Iterator
from typing import Any

SETTINGS_MARKER = "<!-- settings-table -->"
CLI_MARKER = "<!-- cli-reference -->"


# -- settings ----------------------------------------------------------------------------------


def settings_docs() -> dict[str, str]:
    """Each field of ``Settings`` and the ``#:`` comment lines right above it ("" for none)."""
    from cloudq.core.config import Settings

    source = inspect.getsource(Settings)
    lines = source.splitlines()
    [cls] = ast.parse(source).body
    assert isinstance(cls, ast.ClassDef)
    docs: dict[str, str] = {}
    for node in cls.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        comment: list[str] = []
        index = node.lineno - 2
        while index >= 0 and lines[index].strip().startswith("#:"):
            comment.insert(0, lines[index].strip()[2:].strip())
            index -= 1
        docs[node.target.id] = " ".join(comment).replace("``", "`")
    return docs


def _default(value: Any) -> str:
    if value is None or value == () or value == {}:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"`{value}`"


def settings_markdown() -> str:
    from cloudq.core.config import ENV_PREFIX, Settings

    docs = settings_docs()
    rows = ["| setting | environment | default | |", "| --- | --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        text = docs.get(name, "").replace("|", "\\|")
        # A default computed when the app is made is named in the comment: "Default: `…`".
        named = re.search(r"Default: (`[^`]+`)", text)
        default = named.group(1) if named else _default(field.default)
        rows.append(f"| `{name}` | `{ENV_PREFIX}{name.upper()}` | {default} | {text} |")
    return "\n".join(rows)


# -- command line ------------------------------------------------------------------------------


def commands() -> Iterator[tuple[str, Any, Any]]:
    """(path, command, context) of every command under ``cloudq``, depth first, groups included."""
    import click

    from cloudq.cli import main

    def walk(command: click.Command, ctx: click.Context) -> Iterator[tuple[str, Any, Any]]:
        yield ctx.command_path, command, ctx
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is not None and not sub.hidden:
                    yield from walk(sub, click.Context(sub, info_name=name, parent=ctx))

    yield from walk(main, click.Context(main, info_name="cloudq"))


def options_of(command: Any) -> list[Any]:
    """The documented options of ``command`` (not ``--help``)."""
    import click

    return [p for p in command.params if isinstance(p, click.Option) and not p.hidden]


def _option_row(option: Any, ctx: Any) -> str:
    names = ", ".join(f"`{name}`" for name in [*option.opts, *option.secondary_opts])
    kind = (
        "flag"
        if option.is_flag
        else option.make_metavar(ctx)
        if _takes_ctx(option)
        else option.make_metavar()
    )
    default = option.default if option.show_default and not callable(option.default) else None
    text = (option.help or "").replace("|", "\\|")
    kind = str(kind).replace("|", ", ")  # a choice: a pipe would end the table cell
    if default not in (None, False, ()):
        text += f" Default: `{default}`."
    if option.envvar:
        text += f" Environment: `{option.envvar}`."
    return f"| {names} | `{kind}` | {text.strip()} |"


def _takes_ctx(option: Any) -> bool:
    return "ctx" in inspect.signature(option.make_metavar).parameters


def cli_markdown() -> str:
    out: list[str] = []
    for path, command, ctx in commands():
        level = "#" * min(2 + path.count(" "), 4)
        out.append(f"{level} `{path}`\n")
        out.append(inspect.cleandoc(command.help or "") + "\n")
        out.append("```text\n" + command.get_usage(ctx) + "\n```\n")
        rows = [_option_row(option, ctx) for option in options_of(command)]
        if rows:
            out.append("| option | value | |\n| --- | --- | --- |\n" + "\n".join(rows) + "\n")
    return "\n".join(out)


# -- the hook ----------------------------------------------------------------------------------


def on_page_markdown(markdown: str, **_: Any) -> str:
    if SETTINGS_MARKER in markdown:
        markdown = markdown.replace(SETTINGS_MARKER, settings_markdown())
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_markdown())
    return markdown
