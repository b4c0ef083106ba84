"""What ``cloudq infra package`` leaves out of a Lambda zip is named by path: every name must
still be a module or folder of the package (a move would otherwise ship it silently)."""

from __future__ import annotations

from pathlib import Path

import cloudq
from cloudq.infra.package import CLI_ONLY

PACKAGE = Path(cloudq.__file__).parent


def test_every_module_left_out_of_the_lambda_zip_exists() -> None:
    missing = [part for part in CLI_ONLY if not (PACKAGE / part).exists()]
    assert missing == []
