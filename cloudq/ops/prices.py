"""The one price table cloudq's cost figures use (``cloudq status --cost``, the dashboard's cost
panel, the bench): on-demand list prices in US dollars, without free tiers.

Source: AWS's public price pages for SQS, DynamoDB (on-demand) and Lambda (x86), region
us-east-1, as read in January 2025 (DynamoDB's on-demand prices after the November 2024 cut).
Another region, or a negotiated price: ``CLOUDQ_PRICES`` holds JSON of the fields to change,
per region, e.g. ``{"eu-west-1": {"sqs_standard_per_million": 0.4}}`` (or ``@path/to/file.json``).
A region with no entry uses us-east-1's, and the report says so.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from cloudq.core.errors import ConfigurationError

PRICES_ENV = "CLOUDQ_PRICES"
SOURCE = "AWS list prices (SQS, DynamoDB on-demand, Lambda x86), us-east-1, as read 2025-01"
BASE_REGION = "us-east-1"


@dataclass(frozen=True)
class Prices:
    region: str
    #: SQS: per million requests (each 64 KiB of a payload is one request).
    sqs_standard_per_million: float = 0.40
    sqs_fifo_per_million: float = 0.50
    #: DynamoDB on-demand: per million request units.
    dynamodb_write_per_million: float = 0.625
    dynamodb_read_per_million: float = 0.125
    #: Lambda: per million invocations, and per GB-second of duration × memory.
    lambda_per_million: float = 0.20
    lambda_gb_second: float = 0.0000166667
    #: Where the figures come from (the table's, or "… with CLOUDQ_PRICES for <region>").
    source: str = SOURCE


PRICES: dict[str, Prices] = {BASE_REGION: Prices(BASE_REGION)}


def prices_for(region: str | None, overrides: str | None = None) -> Prices:
    """The prices of ``region``: the table's, then ``overrides`` (``CLOUDQ_PRICES`` by default)."""
    region = region or BASE_REGION
    text = os.environ.get(PRICES_ENV) if overrides is None else overrides
    found = PRICES.get(region)
    if found is None:
        found = replace(PRICES[BASE_REGION], region=region, source=f"{SOURCE} (no entry for {region})")
    changes = _overrides(text).get(region)
    if not changes:
        return found
    known = {field.name for field in fields(Prices)} - {"region", "source"}
    unknown = set(changes) - known
    if unknown:
        raise ConfigurationError(f"{PRICES_ENV}: unknown price(s) {', '.join(sorted(unknown))}")
    try:
        values = {name: float(value) for name, value in changes.items()}
    except (TypeError, ValueError):
        raise ConfigurationError(f"{PRICES_ENV}: the prices of {region} must be numbers") from None
    changed: dict[str, Any] = {**values, "source": f"{found.source}, with {PRICES_ENV} for {region}"}
    return replace(found, **changed)


def _overrides(text: str | None) -> dict[str, dict[str, Any]]:
    if not text:
        return {}
    try:
        if text.startswith("@"):
            text = Path(text[1:]).read_text()
        parsed = json.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{PRICES_ENV}: not readable JSON ({exc})") from None
    if not isinstance(parsed, dict) or not all(isinstance(value, dict) for value in parsed.values()):
        raise ConfigurationError(f'{PRICES_ENV}: expected {{"<region>": {{"<price>": <number>}}}}')
    return parsed
