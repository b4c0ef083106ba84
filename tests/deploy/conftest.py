"""Fixtures for the deployment tests: the Serverless Framework, installed once from npm."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.checkout import checkout_lock

ROOT = Path(__file__).resolve().parents[2]
#: Serverless Framework v3, pinned (v4 needs an account to run at all).
SERVERLESS_VERSION = "3.40.0"
#: git-ignored; kept between runs so only the first one reaches the npm registry.
NPM_CACHE = ROOT / ".cache" / "serverless"


@pytest.fixture(scope="session")
def serverless_cli() -> Path:
    """The ``serverless`` executable, installed by ``npm install`` into ``.cache/serverless``
    (under the checkout lock: another test process may be installing it too)."""
    with checkout_lock():
        return _install_serverless()


def _install_serverless() -> Path:
    installed = NPM_CACHE / "node_modules" / "serverless" / "package.json"
    executable = NPM_CACHE / "node_modules" / ".bin" / "serverless"
    if installed.exists() and json.loads(installed.read_text())["version"] == SERVERLESS_VERSION:
        return executable
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not on PATH: install Node.js (20+) to run the serverless tests")
    NPM_CACHE.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            npm,
            "install",
            "--prefix",
            str(NPM_CACHE),
            "--no-audit",
            "--no-fund",
            f"serverless@{SERVERLESS_VERSION}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        pytest.fail(f"npm install serverless@{SERVERLESS_VERSION} failed: {done.stderr[-2000:]}")
    return executable
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not on PATH: install Node.js (20+) to run the serverless tests")
    NPM_CACHE.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            npm,
            "install",
            "--prefix",
            str(NPM_CACHE),
            "--no-audit",
            "--no-fund",
            f"serverless@{SERVERLESS_VERSION}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        pytest.fail(f"npm install serverless@{SERVERLESS_VERSION} failed: {done.stderr[-2000:]}")
    return executable
