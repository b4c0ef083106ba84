"""The ministack server: a pure-Python local AWS (SQS, DynamoDB, S3, Lambda) on 127.0.0.1.

Started as a subprocess bound to loopback (``BIND_HOST=127.0.0.1``), with its MQTT/mTLS
listener off (``IOT_MTLS_ENABLED=0``; otherwise it opens 0.0.0.0:8883), on a given or free
port; ready when ``GET /_ministack/health`` answers 200. Several run side by side.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from cloudq.core.errors import CloudQError

START_TIMEOUT_SECONDS = 60.0
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


class EmulatorError(CloudQError):
    """The emulator could not be started."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class MinistackServer:
    """``with MinistackServer() as server: server.endpoint_url``"""

    def __init__(self, port: int | None = None, *, authenticate: bool = False) -> None:
        self.port = port or free_port()
        #: Request authentication on (ministack's ``AUTH=true``): signatures are verified and
        #: IAM policies enforced; the root key is ``test``/``test``.
        self.authenticate = authenticate
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._log = Path(tempfile.gettempdir()) / f"cloudq-ministack-{self.port}.log"

    def environment(self) -> dict[str, str]:
        """Variables that point boto3 (and so cloudq) at this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint_url, **FAKE_CREDENTIALS}

    def running(self) -> bool:
        """Whether an emulator already answers on this port."""
        return _healthy(self.endpoint_url)

    def start(self) -> MinistackServer:
        if self.running():
            raise EmulatorError(f"port {self.port} is already in use by another server; pick --port")
        env = {
            **os.environ,
            "BIND_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(self.port),
            "IOT_MTLS_ENABLED": "0",
            "LOG_LEVEL": "WARNING",
            "S3_DATA_DIR": tempfile.mkdtemp(prefix="cloudq-ministack-s3-"),
            "AUTH": "true" if self.authenticate else "false",
        }
        with open(self._log, "wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "ministack"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmulatorError(f"ministack exited with {self._process.returncode}: {self._tail()}")
            if _healthy(self.endpoint_url):
                return
            time.sleep(0.1)
        self.stop()
        raise EmulatorError(f"ministack did not answer on {self.endpoint_url} in time: {self._tail()}")

    def _tail(self) -> str:
        try:
            return " | ".join(self._log.read_text(errors="replace").strip().splitlines()[-5:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> MinistackServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _healthy(endpoint_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint_url}/_ministack/health", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
