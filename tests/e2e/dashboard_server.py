"""A real ``cloudq dashboard`` process for the e2e tests and the bench: started with
``--port 0``, its address read from the line it prints."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def dashboard_process(env: dict[str, str], log: Path, *args: str) -> Iterator[str]:
    """Yields the dashboard's base URL (``http://127.0.0.1:<port>``); stops it at the end."""
    command = [sys.executable, "-m", "cloudq", "dashboard", "--app", "tests.tasks:app", "--port", "0", *args]
    with open(log, "w+") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 30
            while True:
                output.seek(0)
                found = re.search(r"on (http://\S+?)/ ", output.read())
                if found:
                    break
                if process.poll() is not None or time.monotonic() > deadline:
                    output.seek(0)
                    raise AssertionError(f"the dashboard did not start: {output.read()}")
                time.sleep(0.05)
            yield found.group(1)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
