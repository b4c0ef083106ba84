"""cfn-lint as a user runs it, on templates a test wrote."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

#: cfn-lint's checks that compare a Lambda runtime's AWS dates (deprecation, create and update
#: blocks) with today's date: a test running them would fail on a day, not on a change. The
#: rendered runtime, python3.11, is deprecated on AWS Lambda on 2027-06-30 (cfn-lint's data).
DATE_DEPENDENT_CHECKS = ("W2531", "E2531", "E2533")


def cfn_lint(*paths: Path) -> subprocess.CompletedProcess[str]:
    """cfn-lint as a user runs it, every check but the ones that depend on today's date."""
    cli = Path(sys.executable).with_name("cfn-lint")
    command = [str(cli), "--ignore-checks", *DATE_DEPENDENT_CHECKS, "--", *map(str, paths)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)
