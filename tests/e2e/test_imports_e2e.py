"""Every module of both distributions imports on its own, each in a fresh interpreter: an
import cycle shows only when one of its modules is imported first (issue 23:
``import cloudq_emulator.cli`` failed while ``import cloudq.cli`` worked).

One process per module, one per core at a time: about 10 s on 2 idle cores (17 s loaded),
so it runs with the process-level tests, not the unit tier."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The import packages of the two distributions (cloudq-aws and cloudq-aws-emulator).
PACKAGES = (ROOT / "cloudq", ROOT / "emulator" / "cloudq_emulator")


def every_module() -> list[str]:
    """The dotted name of every ``.py`` file of both packages."""
    names = []
    for package in PACKAGES:
        for path in sorted(package.rglob("*.py")):
            parts = path.relative_to(package.parent).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def import_alone(module: str) -> str | None:
    """``None`` when ``python -c "import <module>"`` succeeds, else the module and its error."""
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    if done.returncode == 0:
        return None
    last = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
    return f"{module}: {last[0]}"


def test_every_module_imports_alone_in_a_fresh_interpreter() -> None:
    # Given every module of cloudq and of the emulator
    modules = every_module()
    assert {"cloudq", "cloudq.cli", "cloudq.transports.memory", "cloudq_emulator.cli"} <= set(modules)
    # When each is imported alone, in a process of its own (~0.3 s each, one per core at a time)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        failures = [failure for failure in pool.map(import_alone, modules) if failure is not None]
    # Then none fails
    assert failures == [], "modules that fail to import alone:\n" + "\n".join(failures)
