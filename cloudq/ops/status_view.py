"""``cloudq status`` on a terminal: rich tables, once or live (``--watch``). Imported by the
CLI only (rich is the ``cli`` extra)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from cloudq.ops.status_text import NOT_AVAILABLE
from cloudq.ops.status_text import age_text as _age
from cloudq.ops.status_text import ms_text as _ms

if TYPE_CHECKING:
    from cloudq.ops.status import Status, StatusReader


def _alarming(count: int) -> Text:
    return Text(str(count), style="bold red" if count else "")


def _table(title: str, names: tuple[str, ...], rows: list[tuple[str | Text, ...]]) -> Table:
    """Two name columns on the left, figures on the right."""
    table = Table(title=title, title_justify="left")
    for index, name in enumerate(names):
        if index < 2:  # names are never cut; the figures' headers wrap instead
            widest = max([len(name), *(len(str(row[index])) for row in rows)])
            table.add_column(name, justify="left", no_wrap=True, min_width=widest)
        else:
            table.add_column(name, justify="right")
    for row in rows:
        table.add_row(*row)
    return table


def render(status: Status, footer: str = "") -> Group:
    queues = _table(
        f"cloudq {status.app} · {status.broker}",
        ("queue", "consumers", "visible", "not visible", "delayed", "dead letters", "oldest"),
        [
            (
                queue.queue,
                queue.mode,
                str(queue.visible),
                str(queue.not_visible),
                str(queue.delayed),
                _alarming(queue.dead_letters),
                _age(queue.oldest_age_seconds),
            )
            for queue in status.queues
        ],
    )
    parts: list[Table | Text] = [queues, Text(f"oldest message: {status.oldest_age_source}", style="dim")]
    if status.outcomes is None:
        parts.append(Text(f"recent outcomes: {status.outcomes_source}", style="dim"))
    else:
        parts.append(_outcomes(status))
    if status.running is None:
        parts.append(Text(f"running tasks' progress: {status.running_source}", style="dim"))
    elif status.running:
        parts.append(_running(status))
    if footer:
        parts.append(Text(footer, style="dim"))
    return Group(*parts)


def _outcomes(status: Status) -> Table:
    assert status.outcomes is not None
    return _table(
        f"recent outcomes ({status.outcomes_source})",
        ("task", "queue", "succeeded", "retried", "failed", "p50", "p95"),
        [
            (
                row.task,
                row.queue,
                str(row.succeeded),
                str(row.retried),
                _alarming(row.failed),
                _ms(row.p50_ms),
                _ms(row.p95_ms),
            )
            for row in status.outcomes
        ],
    )


def _running(status: Status) -> Table:
    assert status.running is not None
    return _table(
        f"running ({status.running_source})",
        ("task id", "task", "done", "of", "message"),
        [
            (
                row.task_id,
                row.task,
                f"{row.done:g}",
                NOT_AVAILABLE if row.total is None else f"{row.total:g}",
                row.message or "",
            )
            for row in status.running
        ],
    )


def show(status: Status) -> None:
    Console().print(render(status))


def watch(reader: StatusReader, interval: float) -> None:
    """Refresh every ``interval`` seconds until Ctrl-C."""
    console = Console()
    with Live(console=console, auto_refresh=False, screen=False) as live:
        while True:
            status = reader.read()
            stamp = time.strftime("%H:%M:%S")
            footer = f"refreshed {stamp}, every {interval:g} s; Ctrl-C stops"
            live.update(render(status, footer), refresh=True)
            time.sleep(interval)
