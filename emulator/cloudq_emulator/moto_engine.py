"""moto in-process: every boto3 call of the process goes to moto's in-memory AWS.

Good for unit and conformance tests. Its SQS slows with queue depth (each receive walks every
message), so keep its queues shallow; use the ministack server for volume.
"""

from __future__ import annotations

import logging
import os
from types import TracebackType
from typing import Any

from cloudq_emulator.server import FAKE_CREDENTIALS


def _known_gap(record: logging.LogRecord) -> bool:
    """moto's CloudFormation skips types it does not model (alarms, ECS scaling) with a warning
    per resource and deploy; the stack still holds what cloudq uses (queues, table, roles)."""
    return not record.getMessage().startswith("No Moto CloudFormation support for ")


logging.getLogger("moto").addFilter(_known_gap)


class MotoEngine:
    """``with MotoEngine(): ...`` — moto's ``mock_aws`` with fake credentials set."""

    def __init__(self) -> None:
        from moto import mock_aws

        self._mock: Any = mock_aws()
        self._saved: dict[str, str | None] = {}

    def __enter__(self) -> MotoEngine:
        for key, value in {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": ""}.items():
            self._saved[key] = os.environ.get(key)
            if key == "AWS_ENDPOINT_URL":
                os.environ.pop(key, None)  # moto intercepts AWS hostnames, not our emulator's
            else:
                os.environ[key] = value
        self._mock.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._mock.stop()
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
