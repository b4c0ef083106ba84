"""``cloudq status --cost`` arithmetic, checked against a computation by hand, and the price
table's overrides."""

from __future__ import annotations

import pytest

from cloudq.core.errors import ConfigurationError
from cloudq.ops.cost import QueueUsage, Usage, estimate
from cloudq.ops.prices import Prices, prices_for
from cloudq.ops.status_text import cost_text

US_EAST_1 = Prices("us-east-1")


def usage(**changes: object) -> Usage:
    """An hour: 1,000 tasks on a standard queue and 100 on a FIFO queue, 720 empty receives
    on each (one worker polling every 5 s), 2,200 DynamoDB read and write units."""
    values: dict[str, object] = {
        "window_seconds": 3600,
        "queues": [
            QueueUsage("shop-default", False, "worker", 1000, 1000, 1000, 720),
            QueueUsage("shop-orders.fifo", True, "worker", 100, 100, 100, 720),
        ],
        "read_units": 2200,
        "write_units": 2200,
        "lambda_invocations": 0,
        "lambda_duration_ms": 0,
        "lambda_memory_mb": 256,
        "wait_seconds": 5.0,
        "has_results": True,
    }
    values.update(changes)
    return Usage(**values)  # type: ignore[arg-type]


def test_cost_per_million_tasks_and_idle_per_day_by_hand() -> None:
    report = estimate(usage(), US_EAST_1)
    # By hand: SQS $0.40 (standard) and $0.50 (FIFO) per million requests
    empty = 720 * 0.40e-6 + 720 * 0.50e-6  # 0.000648
    per_kind = 1000 * 0.40e-6 + 100 * 0.50e-6  # received, sent, deleted: 0.00045 each
    dynamodb = 2200 * 0.625e-6 + 2200 * 0.125e-6  # 0.00165
    assert [line.dollars for line in report.lines[:6]] == pytest.approx(
        [empty, per_kind, per_kind, per_kind, 2200 * 0.625e-6, 2200 * 0.125e-6]
    )
    assert report.tasks == 1100
    assert report.per_million_tasks == pytest.approx((3 * per_kind + dynamodb) / 1100 * 1e6)
    assert report.per_million_tasks == pytest.approx(2.727272, rel=1e-5)
    assert report.idle_per_day == pytest.approx(empty * 24) == pytest.approx(0.015552)
    # and each piece of advice is what its option removes
    advice = {item.option: item for item in report.advice}
    assert advice["ignore_result=True"].per_million_tasks == pytest.approx(0.625)  # one write unit
    assert advice["deduplicate=False"].per_million_tasks == pytest.approx(0.625)
    assert advice["wait_seconds=20"].idle_per_day == pytest.approx(0.015552 * (1 - 5 / 20))
    batch = next(item for item in report.advice if item.option.startswith("batches"))
    assert batch.per_million_tasks == pytest.approx(2 * per_kind / 1100 * 1e6 * 0.9)


def test_lambda_duration_times_memory() -> None:
    report = estimate(
        usage(lambda_invocations=500, lambda_duration_ms=50_000, lambda_memory_mb=256), US_EAST_1
    )
    invocations, gb_seconds = report.lines[6], report.lines[7]
    assert invocations.dollars == pytest.approx(500 * 0.20e-6)
    assert gb_seconds.quantity == pytest.approx(50 * 0.25)  # 50 s at a quarter GB
    assert gb_seconds.dollars == pytest.approx(12.5 * 0.0000166667)


def test_no_task_in_the_window_is_na_per_task_with_the_reason() -> None:
    idle = [QueueUsage("shop-default", False, "worker", 0, 0, 0, 17_280)]
    report = estimate(usage(queues=idle, read_units=0, write_units=0, window_seconds=86_400), US_EAST_1)
    assert report.per_million_tasks is None and "no task finished" in report.note
    assert report.idle_per_day == pytest.approx(17_280 * 0.40e-6)
    text = "\n".join(cost_text(report))
    assert "per million tasks: n/a" in text and "idle, per day:     $0.0069" in text
    # a long poll of 20 s already: no poll-wait advice
    assert not [
        a for a in estimate(usage(wait_seconds=20.0), US_EAST_1).advice if a.option.startswith("wait")
    ]


def test_prices_are_overridden_per_region() -> None:
    assert prices_for("us-east-1", "") == US_EAST_1
    other = prices_for("eu-west-1", '{"eu-west-1": {"sqs_standard_per_million": 0.5}}')
    assert other.sqs_standard_per_million == 0.5 and other.dynamodb_write_per_million == 0.625
    assert "no entry for eu-west-1" in other.source and "CLOUDQ_PRICES" in other.source
    with pytest.raises(ConfigurationError, match="unknown price"):
        prices_for("us-east-1", '{"us-east-1": {"sqs_cheap": 0.1}}')
    with pytest.raises(ConfigurationError, match="not readable JSON"):
        prices_for("us-east-1", "{nope")
