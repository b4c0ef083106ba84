"""What the e2e and chaos tests share: the environment of a test and its processes, real
``cloudq worker`` processes, the side effects tasks record (see ``tests.tasks``), and the
reason on a dead letter read with plain boto3."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from cloudq.transports.base import DeadLetterNote
from cloudq_emulator.server import MinistackServer

WorkerFactory = Callable[..., subprocess.Popen[str]]


def process_env(
    server: MinistackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefix: str
) -> dict[str, str]:
    """Set this test's environment, and return the one for its processes: AWS pointed at the
    emulator, a unique app name, and a folder where tasks record their side effects."""
    env = {
        **server.environment(),
        "CLOUDQ_TEST_APP": f"{prefix}{uuid.uuid4().hex[:10]}",
        "CLOUDQ_TEST_LOG_DIR": str(tmp_path),
        "CLOUDQ_WAIT_SECONDS": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, **env}


@contextmanager
def worker_processes(
    base_env: dict[str, str], tmp_path: Path, stop_timeout: float = 15, cwd: Path | None = None
) -> Iterator[WorkerFactory]:
    """``start(*args, env={...}, app="tests.tasks:app", global_args=(...))`` starts ``cloudq
    *global_args worker app *args`` (in ``cwd``) with its output in ``worker-<n>.log``; at the
    end each gets SIGTERM, then SIGKILL if it lingers."""
    processes: list[subprocess.Popen[str]] = []

    def start(
        *extra: str,
        env: dict[str, str] | None = None,
        app: str = "tests.tasks:app",
        global_args: tuple[str, ...] = (),
    ) -> subprocess.Popen[str]:
        log = open(tmp_path / f"worker-{len(processes)}.log", "w")  # noqa: SIM115
        command = [sys.executable, "-m", "cloudq", *global_args, "worker", app, *extra]
        process = subprocess.Popen(
            command,
            env={**base_env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=cwd,
        )
        processes.append(process)
        return process

    try:
        yield start
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def worker_log(tmp_path: Path, index: int = 0) -> str:
    path = tmp_path / f"worker-{index}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def side_effects(env: dict[str, str], name: str) -> list[str]:
    path = Path(env["CLOUDQ_TEST_LOG_DIR"]) / name
    return path.read_text().splitlines() if path.exists() else []


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def wait_for_side_effect(env: dict[str, str], name: str, timeout: float = 30) -> list[str]:
    """Poll until the task ``name`` has recorded a side effect (it started), then return them."""
    wait_until(lambda: bool(side_effects(env, name)), timeout, interval=0.05)
    return side_effects(env, name)


def dead_letter_note(raw: dict[str, Any]) -> DeadLetterNote | None:
    """cloudq's note on a dead letter as boto3's ``receive_message`` returns it (asked for
    ``MessageAttributeNames=["All"]``)."""
    attributes = {
        name: value.get("StringValue", "") for name, value in raw.get("MessageAttributes", {}).items()
    }
    return DeadLetterNote.from_attributes(attributes)
