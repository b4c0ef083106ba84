"""A tiny HTTP proxy on 127.0.0.1 that forwards to the emulator and counts AWS API calls.

boto3 talks the AWS JSON protocol to SQS and DynamoDB: the operation is in the
``X-Amz-Target`` header (``AmazonSQS.ReceiveMessage``, ``DynamoDB_20120810.PutItem``), and a
call in the query protocol (kombu's receives) is named the same way from its ``Action``; S3
calls are counted by method, as ``S3.PutObject`` and so on, EventBridge Scheduler's by path and
method (``Scheduler.CreateSchedule``). Counting at the HTTP level counts
what AWS bills, retries included.
"""

from __future__ import annotations

import http.client
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

#: S3 speaks REST without an operation header: the method names the object operation (the only
#: S3 calls cloudq makes are on objects of the payload bucket).
S3_OPERATIONS = {
    "PUT": "S3.PutObject",
    "GET": "S3.GetObject",
    "DELETE": "S3.DeleteObject",
    "HEAD": "S3.HeadObject",
}
#: EventBridge Scheduler speaks REST too: ``/schedules/<name>`` by method, ``/schedules`` lists.
SCHEDULER_OPERATIONS = {
    "POST": "Scheduler.CreateSchedule",
    "GET": "Scheduler.GetSchedule",
    "PUT": "Scheduler.UpdateSchedule",
    "DELETE": "Scheduler.DeleteSchedule",
}
#: The JSON protocol's prefix (``X-Amz-Target``) of a service that is also called in the query protocol.
QUERY_SERVICES = {"sqs": "AmazonSQS"}
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A consumer process that exits with keep-alive connections open resets them: not
        worth a traceback on the bench's output."""


class CountingProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.calls: Counter[str] = Counter()
        #: (operation, time.monotonic()) of every call, in order (``times``).
        self._times: list[tuple[str, float]] = []
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> CountingProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> Counter[str]:
        with self._lock:
            calls, self.calls = self.calls, Counter()
        return calls

    def times(self, operation: str) -> list[float]:
        """When (``time.monotonic()``) each call of ``operation`` arrived, oldest first."""
        with self._lock:
            return [at for name, at in self._times if name == operation]

    def _count(self, operation: str) -> None:
        with self._lock:
            self.calls[operation] += 1
            self._times.append((operation, time.monotonic()))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes; without NODELAY, Nagle plus the
                # client's delayed ACK adds ~40 ms to every call.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length) if length else None
                # JSON protocol: X-Amz-Target; CloudWatch's CBOR protocol: .../operation/<name>;
                # S3 (REST): the method.
                operation = self.path.rsplit("/operation/", 1)[-1] if "/operation/" in self.path else ""
                proxy._count(
                    self.headers.get("X-Amz-Target")
                    or operation
                    or _query_operation(self.headers, body)
                    or _rest_operation(self.command, self.path)
                )
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                response, data = self._upstream_call(body, headers)
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in HOP_HEADERS:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _upstream_call(self, body: bytes | None, headers: dict[str, str]) -> tuple[Any, bytes]:
                self._upstream, answer = _forward_on(
                    getattr(self, "_upstream", None), proxy, self.command, self.path, body, headers
                )
                return answer

            def finish(self) -> None:
                super().finish()
                upstream = getattr(self, "_upstream", None)
                if upstream is not None:
                    upstream.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        return Handler


def _query_operation(headers: Any, body: bytes | None) -> str:
    """The operation of a call in the query protocol (a form with ``Action=``, as kombu's own
    SQS client sends its receives), named as the JSON protocol names it: the service from the
    signature's scope (``Credential=<key>/<date>/<region>/sqs/aws4_request``)."""
    if not body or "x-www-form-urlencoded" not in headers.get("Content-Type", ""):
        return ""
    action = parse_qs(body.decode("ascii", "replace")).get("Action", [""])[0]
    scope = headers.get("Authorization", "").split("Credential=", 1)[-1].split(",", 1)[0].split("/")
    service = scope[3] if len(scope) > 3 else ""
    if not action:
        return ""
    return f"{QUERY_SERVICES.get(service, service)}.{action}"


def _rest_operation(method: str, path: str) -> str:
    """The operation of a REST call: Scheduler's by its path, else S3's by the method."""
    route = urlsplit(path).path
    if route == "/schedules":
        return "Scheduler.ListSchedules"
    if route.startswith("/schedules/"):
        return SCHEDULER_OPERATIONS.get(method, method)
    return S3_OPERATIONS.get(method, method)


def _forward_on(
    upstream: http.client.HTTPConnection | None,
    proxy: CountingProxy,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
) -> tuple[http.client.HTTPConnection | None, tuple[Any, bytes]]:
    """Forward one request on a client connection's own upstream connection, kept open (a new
    connection per call would leave thousands of sockets in TIME_WAIT and slow every later
    drain of a run); once more on a fresh connection if the kept one was closed."""
    for attempt in (1, 2):
        if upstream is None:
            upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
        try:
            upstream.request(method, path, body=body, headers=headers)
            response = upstream.getresponse()
            return upstream, (response, response.read())
        except (http.client.HTTPException, OSError):
            upstream.close()
            upstream = None
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@contextmanager
def counted_emulator() -> Iterator[CountingProxy]:
    """A ministack server with this proxy in front; this process's AWS clients (boto3 reads
    ``AWS_ENDPOINT_URL``) go through the proxy until the end."""
    from cloudq_emulator.server import MinistackServer

    server = MinistackServer()
    server.start()
    proxy = CountingProxy(server.endpoint_url).start()
    os.environ.update(server.environment())
    os.environ["AWS_ENDPOINT_URL"] = proxy.endpoint_url
    try:
        yield proxy
    finally:
        proxy.stop()
        server.stop()
