"""The lean path's HTTP: HTTP/1.1 over keep-alive sockets, one pool per client.

The hot calls are one ``POST`` each, with a JSON body and a JSON answer of known length, so the
client is small: it writes the request in one ``sendall`` and reads the status line, the
headers and the body itself. Python's ``http.client`` (under urllib3 and so under botocore)
parses every answer's headers with the ``email`` package, about a third of a call's CPU, and
urllib3 adds its own layers and ~30 ms of import to a Lambda cold start (bench/bench_cold.py).

What botocore's HTTP did, this does too:

- TLS is verified, against the CA bundle botocore would use (``AWS_CA_BUNDLE`` or the
  ``ca_bundle`` setting, else certifi's), host name included.
- ``HTTPS_PROXY``/``HTTP_PROXY`` and ``NO_PROXY`` are honoured as botocore honours them: an
  HTTPS endpoint through a ``CONNECT`` tunnel, an HTTP one by its absolute URL; credentials in
  the proxy's URL are sent as ``Proxy-Authorization``.
- Connect and read timeouts are separate; an idle connection the server closed is noticed
  before it is used, and a request the server never answered on a reused connection (closed
  just as it was sent) is sent again once on a new one.
- Answers sent in chunks, or closing the connection, are read as well.

Failures are the exceptions below, which ``cloudq.core.lean.errors`` maps to botocore's.
"""

from __future__ import annotations

import base64
import os
import select
import socket
import ssl
import threading
from typing import Any
from urllib.parse import unquote, urlsplit

#: The longest status or header line read (as http.client's limit).
MAX_LINE = 65536


class HTTPFailure(Exception):
    """No answer: the request may or may not have reached the server."""


class ConnectFailed(HTTPFailure):
    """The endpoint refused or could not be reached."""


class ConnectTimedOut(HTTPFailure):
    """No connection within the connect timeout."""


class ReadTimedOut(HTTPFailure):
    """No answer within the read timeout."""


class ProxyFailed(HTTPFailure):
    """The proxy refused, or could not open the tunnel."""


class TLSFailed(HTTPFailure):
    """The TLS handshake failed (a certificate not trusted, a wrong host name)."""


class ConnectionClosed(HTTPFailure):
    """The connection closed or broke before the whole answer was read."""


class NoAnswer(ConnectionClosed):
    """The connection closed before the request was sent, or before any of the answer."""


def ca_bundle(configured: str | None = None) -> str | None:
    """The CA bundle to verify with: the configured one, else ``AWS_CA_BUNDLE``, else certifi's
    (botocore's default), else ``None`` (the system's)."""
    found = configured or os.environ.get("AWS_CA_BUNDLE")
    if found:
        return found
    try:
        import certifi
    except ImportError:  # pragma: no cover - certifi comes with botocore's requirements
        return None
    return str(certifi.where())


def proxy_for(endpoint_url: str) -> str | None:
    """The proxy the environment names for ``endpoint_url`` (``HTTPS_PROXY``, ``HTTP_PROXY``, in
    lower case first), unless ``NO_PROXY`` excludes its host: what botocore reads, through
    ``urllib.request``'s rules, without that module's imports."""
    parts = urlsplit(endpoint_url)
    env = os.environ
    scheme = parts.scheme.lower()
    if scheme == "http" and "REQUEST_METHOD" in env:  # a CGI request's own header (httpoxy)
        return None
    proxy = env.get(f"{scheme}_proxy") or env.get(f"{scheme.upper()}_PROXY")
    if not proxy or _bypassed(parts.netloc.lower(), env.get("no_proxy") or env.get("NO_PROXY") or ""):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _bypassed(host: str, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` names ``host`` (``host[:port]``): ``*``, or an entry equal to the
    host or a domain it ends with (a leading dot optional)."""
    if no_proxy.strip() == "*":
        return True
    host_only = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    for entry in no_proxy.split(","):
        name = entry.strip().lstrip(".").lower()
        if not name:
            continue
        if name in (host_only, host) or host_only.endswith("." + name) or host.endswith("." + name):
            return True
    return False


class _Connection:
    __slots__ = ("sock", "reader")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")

    def dropped(self) -> bool:
        """Whether the server closed this idle connection (it is readable: EOF or stray data)."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class Pool:
    """Keep-alive connections to one endpoint, at most ``maxsize`` kept idle; thread-safe.
    ``request`` sends one request and returns ``(status, headers, body)``, header names in
    lower case."""

    def __init__(
        self,
        endpoint_url: str,
        *,
        maxsize: int,
        verify: str | None,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        parts = urlsplit(endpoint_url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.maxsize = maxsize
        self.proxy = proxy_for(endpoint_url)
        self._proxy_address: tuple[str, int] = ("", 0)
        self._proxy_authorization = ""
        if self.proxy:
            proxy = urlsplit(self.proxy)
            self._proxy_address = (
                proxy.hostname or "",
                proxy.port or (443 if proxy.scheme == "https" else 80),
            )
            if proxy.username:
                secret = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}"
                self._proxy_authorization = "Basic " + base64.b64encode(secret.encode()).decode()
        self._context: ssl.SSLContext | None = None
        if self.https:
            self._context = (
                ssl.create_default_context(cafile=verify) if verify else ssl.create_default_context()
            )
        # Through a plain HTTP proxy, the request names the whole URL (RFC 9112, 3.2.2).
        self._absolute = bool(self.proxy) and not self.https
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()

    def request(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        target = self._origin + path if self._absolute else path
        lines = [f"POST {target} HTTP/1.1"]
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        lines.append(f"Content-Length: {len(body)}")
        if self._absolute and self._proxy_authorization:
            lines.append(f"Proxy-Authorization: {self._proxy_authorization}")
        message = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        connection, reused = self._take()
        try:
            return self._exchange(connection, message)
        except NoAnswer:
            if not reused:
                raise
        # The server closed a kept connection as the request went out, and answered nothing:
        # once more, on a new connection, at once (botocore's standard mode would retry it too).
        return self._exchange(self._connect(), message)

    def _exchange(self, connection: _Connection, message: bytes) -> tuple[int, dict[str, str], bytes]:
        keep = False
        try:
            try:
                connection.sock.sendall(message)
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise NoAnswer(f"connection to {self.host}:{self.port} lost: {exc}") from exc
            status, headers, data, keep = self._read(connection.reader)
            return status, headers, data
        except TimeoutError as exc:
            raise ReadTimedOut(f"read timeout on {self.host}:{self.port}") from exc
        except ssl.SSLError as exc:
            raise TLSFailed(str(exc)) from exc
        except OSError as exc:  # reset, broken pipe
            raise ConnectionClosed(f"connection to {self.host}:{self.port} lost: {exc}") from exc
        except ValueError as exc:  # not HTTP
            raise ConnectionClosed(f"{self.host}:{self.port} answered something not HTTP: {exc}") from exc
        finally:
            if keep:
                self._give_back(connection)
            else:
                connection.close()

    def _read(self, reader: Any) -> tuple[int, dict[str, str], bytes, bool]:
        try:
            line = reader.readline(MAX_LINE + 1)
        except ConnectionResetError as exc:  # a connection the server had closed: never read
            raise NoAnswer(f"{self.host}:{self.port} reset the connection without an answer") from exc
        while True:
            if not line:
                raise NoAnswer(f"{self.host}:{self.port} closed the connection without an answer")
            version, _, rest = line.partition(b" ")
            status = int(rest[:3])
            headers = _headers(reader)
            if status != 100:  # an interim answer is followed by the real one
                break
            line = reader.readline(MAX_LINE + 1)
        keep = version == b"HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if status in (204, 304):  # no body, whatever the headers say (RFC 9112, 6.3)
            data = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            data = _chunks(reader)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            data = reader.read(length)
            if len(data) < length:
                raise ConnectionClosed(f"{self.host}:{self.port} closed the connection mid-answer")
        else:  # the answer ends where the connection does
            data, keep = reader.read(), False
        return status, headers, data, keep

    def _take(self) -> tuple[_Connection, bool]:
        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                return self._connect(), False
            if not connection.dropped():
                return connection, True
            connection.close()

    def _give_back(self, connection: _Connection) -> None:
        with self._lock:
            if len(self._idle) < self.maxsize:
                self._idle.append(connection)
                return
        connection.close()

    def _connect(self) -> _Connection:
        address = self._proxy_address if self.proxy else (self.host, self.port)
        try:
            sock = socket.create_connection(address, timeout=self.connect_timeout)
        except TimeoutError as exc:
            raise ConnectTimedOut(f"connect timeout on {address[0]}:{address[1]}") from exc
        except OSError as exc:
            failure = ProxyFailed if self.proxy else ConnectFailed
            raise failure(f"could not connect to {address[0]}:{address[1]}: {exc}") from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.proxy and self.https:
                self._tunnel(sock)
            if self._context is not None:
                sock = self._context.wrap_socket(sock, server_hostname=self.host)
        except ssl.SSLError as exc:
            sock.close()
            raise TLSFailed(str(exc)) from exc
        except TimeoutError as exc:
            sock.close()
            raise ConnectTimedOut(f"connect timeout on {self.host}:{self.port}") from exc
        except OSError as exc:
            sock.close()
            failure = ProxyFailed if self.proxy else ConnectFailed
            raise failure(f"could not connect to {self.host}:{self.port}: {exc}") from exc
        sock.settimeout(self.read_timeout)
        return _Connection(sock)

    def _tunnel(self, sock: socket.socket) -> None:
        """Ask the proxy for a tunnel to the endpoint (``CONNECT``)."""
        lines = [f"CONNECT {self.host}:{self.port} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if self._proxy_authorization:
            lines.append(f"Proxy-Authorization: {self._proxy_authorization}")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        reader = sock.makefile("rb")
        try:
            line = reader.readline(MAX_LINE + 1)
            _headers(reader)
        finally:
            reader.close()
        parts = line.split(b" ", 2)
        if len(parts) < 2 or parts[1] != b"200":
            raise ProxyFailed(f"the proxy refused the tunnel to {self.host}:{self.port}: {line.strip()!r}")

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


def _headers(reader: Any) -> dict[str, str]:
    headers: dict[str, str] = {}
    while True:
        line = reader.readline(MAX_LINE + 1)
        if line in (b"\r\n", b"\n", b""):
            return headers
        name, _, value = line.decode("latin-1").partition(":")
        name, value = name.strip().lower(), value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value


def _chunks(reader: Any) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = reader.readline(MAX_LINE + 1)
        if not size_line:
            raise ConnectionClosed("the connection closed mid-answer")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            _headers(reader)  # trailers, then the blank line
            return b"".join(parts)
        chunk = reader.read(size)
        if len(chunk) < size:
            raise ConnectionClosed("the connection closed mid-answer")
        parts.append(chunk)
        reader.readline(MAX_LINE + 1)  # the CRLF after the chunk
