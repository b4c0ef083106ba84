"""``cloudq demo``: the example app end to end on the embedded emulator."""

from __future__ import annotations

import sys

import click

from cloudq.cli.root import emulator_module, friendly_errors, main


@main.command()
@click.option(
    "--app",
    "app_reference",
    default="examples.shop.tasks:app",
    show_default=True,
    metavar="MODULE:APP",
    help="The app to run end to end.",
)
@click.option(
    "-n",
    "--tasks",
    "count",
    default=200,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Tasks to enqueue.",
)
@click.option(
    "-c", "--concurrency", default=16, show_default=True, type=click.IntRange(1, 1024), help="Worker threads."
)
@click.option("--broker", help="Broker URL for the demo (default: SQS on the embedded emulator).")
@friendly_errors
def demo(app_reference: str, count: int, concurrency: int, broker: str | None) -> None:
    """Run the example app end to end on the embedded emulator: enqueue, work, fetch, check."""
    demo_module = emulator_module("cloudq_emulator.demo")
    ok = demo_module.run_demo(app_reference, count=count, concurrency=concurrency, broker=broker)
    sys.exit(0 if ok else 1)
