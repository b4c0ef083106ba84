"""How a status figure is written, on the terminal (``status_view``) and on the dashboard."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cloudq.ops.cost import CostReport

NOT_AVAILABLE = "n/a"


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return NOT_AVAILABLE
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def ms_text(value: float | None) -> str:
    return NOT_AVAILABLE if value is None else f"{value:.1f} ms"


def dollars(value: float | None) -> str:
    if value is None:
        return NOT_AVAILABLE
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"


def cost_text(report: CostReport | str) -> list[str]:
    """``cloudq status --cost`` as lines of text."""
    if isinstance(report, str):
        return [f"cost: {report}"]
    minutes = report.window_seconds // 60
    found = [
        f"cost over the last {minutes} min ({report.tasks:,.0f} tasks finished)",
        f"  prices: {report.prices.source}",
        f"  per million tasks: {dollars(report.per_million_tasks)}"
        + (f"  ({report.note})" if report.note else ""),
        f"  idle, per day:     {dollars(report.idle_per_day)}  (empty receives at the window's rate)",
        "  the window's bill:",
    ]
    for line in report.lines:
        found.append(
            f"    {line.item:<36} {line.quantity:>14,.1f}  {dollars(line.dollars):>10}  {line.basis}"
        )
    if report.advice:
        found.append("  what would cut it:")
    for advice in report.advice:
        cut = []
        if advice.per_million_tasks:
            cut.append(f"-{dollars(advice.per_million_tasks)} per million tasks")
        if advice.idle_per_day:
            cut.append(f"-{dollars(advice.idle_per_day)} per idle day")
        found.append(f"    {advice.option}: {', '.join(cut) or 'nothing here'} ({advice.why})")
    return found
