"""The lean path's HTTP (``cloudq.core.lean.http``) against a real socket server on 127.0.0.1
that answers as scripted: chunked answers, closed and stale connections, timeouts, answers
that are not HTTP, and the environment's proxy rules."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import BinaryIO

import pytest

from cloudq.core.lean.http import (
    ConnectFailed,
    ConnectionClosed,
    Pool,
    ReadTimedOut,
    proxy_for,
)

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"

#: A connection's handler: reads one request from the socket's file, answers, returns whether
#: to keep the connection open for another request.
Handler = Callable[[socket.socket, bytes], bool]


def _read_request(reader: BinaryIO) -> bytes:
    head = b""
    length = 0
    while True:
        line = reader.readline()
        if not line:
            return b""
        head += line
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
        if line == b"\r\n":
            return head + reader.read(length)


class Server:
    """``start(handler)``: a server on 127.0.0.1 calling ``handler`` per request; its URL.
    ``connections`` counts the connections it accepted."""

    def __init__(self, start: Callable[[Handler], str]) -> None:
        self.start = start
        self.connections = 0


@pytest.fixture
def server() -> Iterator[Server]:
    listener = socket.create_server(("127.0.0.1", 0))
    handler: list[Handler] = []

    def serve_connection(sock: socket.socket) -> None:
        with sock, sock.makefile("rb") as reader:
            while True:
                request = _read_request(reader)
                if not request or not handler[0](sock, request):
                    return

    def accept() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            running.connections += 1
            thread = threading.Thread(target=serve_connection, args=(sock,), daemon=True)
            thread.start()

    def start(given: Handler) -> str:
        handler.append(given)
        threading.Thread(target=accept, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}"

    running = Server(start)
    yield running
    listener.close()


def _pool(url: str, read_timeout: float = 2) -> Pool:
    return Pool(url, maxsize=4, verify=None, connect_timeout=1, read_timeout=read_timeout)


def test_keeps_the_connection_and_reads_a_chunked_answer(server: Server) -> None:
    seen: list[bytes] = []

    def answer(sock: socket.socket, request: bytes) -> bool:
        seen.append(request)
        if len(seen) == 1:
            sock.sendall(OK)
        else:
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Amzn-RequestId: r2\r\n\r\n"
                b'3\r\n{"a\r\n4\r\n":1}\r\n0\r\n\r\n'
            )
        return True

    pool = _pool(server.start(answer))
    assert pool.request("/", {"Host": "h", "X-Amz-Target": "T.Op"}, b'{"x":1}') == (
        200,
        {"content-type": "application/json", "content-length": "2"},
        b"{}",
    )
    status, headers, body = pool.request("/", {"Host": "h"}, b"{}")
    assert (status, headers["x-amzn-requestid"], body) == (200, "r2", b'{"a":1}')
    assert server.connections == 1
    assert seen[0].startswith(b"POST / HTTP/1.1\r\n") and b"Content-Length: 7\r\n" in seen[0]
    assert seen[0].endswith(b'\r\n\r\n{"x":1}') and b"X-Amz-Target: T.Op\r\n" in seen[0]


def test_a_connection_the_server_closed_while_idle_is_replaced(server: Server) -> None:
    def answer_then_close(sock: socket.socket, request: bytes) -> bool:
        sock.sendall(OK)
        return False  # closes after each answer, without saying so

    pool = _pool(server.start(answer_then_close))
    for _ in range(3):
        assert pool.request("/", {"Host": "h"}, b"{}")[0] == 200
    assert server.connections == 3


def test_connection_close_and_an_answer_without_length_are_read_to_the_end(
    server: Server,
) -> None:
    def answer(sock: socket.socket, request: bytes) -> bool:
        sock.sendall(b'HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n{"__type":"x"}')
        return False

    pool = _pool(server.start(answer))
    assert pool.request("/", {"Host": "h"}, b"{}") == (503, {"connection": "close"}, b'{"__type":"x"}')
    assert pool.request("/", {"Host": "h"}, b"{}")[0] == 503
    assert server.connections == 2


def test_no_answer_in_time_is_a_read_timeout(server: Server) -> None:
    release = threading.Event()

    def silent(sock: socket.socket, request: bytes) -> bool:
        release.wait(5)
        return False

    pool = _pool(server.start(silent), read_timeout=0.3)
    with pytest.raises(ReadTimedOut):
        pool.request("/", {"Host": "h"}, b"{}")
    release.set()


@pytest.mark.parametrize(
    "answer",
    [b"", b"SSH-2.0-OpenSSH_9.2\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}"],
    ids=["nothing", "not HTTP", "cut short"],
)
def test_a_bad_or_missing_answer_is_a_closed_connection(server: Server, answer: bytes) -> None:
    def bad(sock: socket.socket, request: bytes) -> bool:
        sock.sendall(answer)
        return False

    with pytest.raises(ConnectionClosed):
        _pool(server.start(bad)).request("/", {"Host": "h"}, b"{}")


def test_a_closed_port_is_a_connect_failure() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectFailed):
        _pool(f"http://127.0.0.1:{port}").request("/", {"Host": "h"}, b"{}")


@pytest.mark.parametrize(
    ("environment", "url", "expected"),
    [
        ({"HTTPS_PROXY": "proxy:3128"}, "https://sqs.us-east-1.amazonaws.com", "http://proxy:3128"),
        ({"https_proxy": "http://a:1", "HTTPS_PROXY": "http://b:2"}, "https://x.com", "http://a:1"),
        ({"HTTP_PROXY": "http://p:1"}, "https://x.com", None),
        ({"HTTP_PROXY": "http://p:1"}, "http://127.0.0.1:4566", "http://p:1"),
        ({"HTTP_PROXY": "http://p:1", "REQUEST_METHOD": "GET"}, "http://127.0.0.1:4566", None),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "amazonaws.com"}, "https://sqs.amazonaws.com", None),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": ".amazonaws.com"}, "https://sqs.amazonaws.com", None),
        ({"HTTPS_PROXY": "http://p:1", "no_proxy": "*"}, "https://anything.example", None),
        (
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "other.com, ,"},
            "https://sqs.amazonaws.com",
            "http://p:1",
        ),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "zonaws.com"}, "https://sqs.amazonaws.com", "http://p:1"),
        ({"HTTP_PROXY": "http://p:1", "NO_PROXY": "127.0.0.1:4566"}, "http://127.0.0.1:4566", None),
    ],
)
def test_the_proxy_follows_the_environment_as_urllib_reads_it(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], url: str, expected: str | None
) -> None:
    import urllib.request

    for name in (
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "NO_PROXY",
        "no_proxy",
        "REQUEST_METHOD",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert proxy_for(url) == expected
    # the same answer as urllib.request's rules, which botocore follows
    scheme, host = url.split("://")
    proxies = urllib.request.getproxies_environment()
    theirs = proxies.get(scheme)
    if theirs and urllib.request.proxy_bypass_environment(host, proxies):  # type: ignore[attr-defined]  # not in typeshed
        theirs = None
    assert (theirs and (theirs if "://" in theirs else f"http://{theirs}")) == expected


def test_an_answer_without_a_body_keeps_the_connection(server: Server) -> None:
    def no_content(sock: socket.socket, request: bytes) -> bool:
        sock.sendall(b"HTTP/1.1 204 No Content\r\nX-Amzn-RequestId: r\r\n\r\n")
        return True

    pool = _pool(server.start(no_content), read_timeout=1)
    assert pool.request("/", {"Host": "h"}, b"{}") == (204, {"x-amzn-requestid": "r"}, b"")
    assert pool.request("/", {"Host": "h"}, b"{}")[0] == 204
    assert server.connections == 1


def test_an_unreachable_proxy_is_named_without_its_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    import botocore.exceptions

    from cloudq.core.aws import aws_client

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "NO_PROXY", "no_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/cloudq-test-config")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("HTTPS_PROXY", f"http://user:secret@127.0.0.1:{port}")
    client = aws_client(
        "sqs", "https://sqs.us-east-1.amazonaws.com", "us-east-1", read_timeout=1, attempts=1, http="lean"
    )
    with pytest.raises(botocore.exceptions.ProxyConnectionError) as raised:
        client.send_message(QueueUrl="https://sqs.us-east-1.amazonaws.com/1/q", MessageBody="x")
    assert "***:***@127.0.0.1" in str(raised.value) and "secret" not in str(raised.value)
