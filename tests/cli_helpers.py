"""Running the ``cloudq`` command as a user does."""

from __future__ import annotations

import subprocess
import sys


def cloudq(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cloudq", *args], capture_output=True, text=True, timeout=60)
