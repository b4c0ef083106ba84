"""A fault-injecting TCP proxy on 127.0.0.1, between worker processes and the emulator.

It forwards bytes both ways, one thread per connection. ``cut()`` simulates a network outage
without touching the emulator (which keeps its state):

- ``cut()`` (a *blackhole*, the default): nothing is forwarded any more. Open connections go
  silent, new connections are accepted (the kernel completes the handshake on loopback
  anyway) and then held, so clients see read timeouts, as across a dead link. Bytes sent
  meanwhile are never delivered: at ``restore()`` every connection that lived through the cut
  is reset, as a NAT or load balancer that lost the flow would, and clients see a connection
  reset if they were still waiting.
- ``cut(reset=True)``: open connections are reset at once and new ones are reset on accept,
  so clients see connection errors immediately (a crashed endpoint or a firewall rejecting).

``restore()`` forwards again; new connections work at once.

``fail_requests(containing)`` fails single requests instead: every HTTP request whose bytes
contain ``containing`` (a receipt handle, say) is answered with an HTTP 500 in AWS's JSON error
form and never reaches the emulator, retries included, while other requests on the same
connections go through. ``fail_requests(None)`` forwards everything again.

``FaultProxy(port, latency=0.2)`` also holds every chunk a client sends for ``latency``
seconds before forwarding it (each connection on its own thread, so concurrent calls wait in
parallel): a slow link to AWS.

Pure stdlib, traffic on 127.0.0.1 only.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from types import TracebackType

CHUNK = 65536
#: How often a held connection re-checks whether the cut is over.
POLL_SECONDS = 0.1
_FAILED_BODY = b'{"__type":"InternalError","message":"request failed by the fault proxy"}'
#: What a request failed by ``fail_requests`` gets: SQS's answer to an internal error.
FAILED_RESPONSE = (
    b"HTTP/1.1 500 Internal Server Error\r\n"
    b"Content-Type: application/x-amz-json-1.0\r\n"
    b"x-amzn-query-error: InternalError;Receiver\r\n"
    b"Content-Length: " + str(len(_FAILED_BODY)).encode() + b"\r\n\r\n" + _FAILED_BODY
)


def aws_error(status: str, code: str, query_code: str) -> bytes:
    """An answer in AWS's JSON 1.0 error form (SQS's ``x-amzn-query-error`` included)."""
    body = b'{"__type":"%s","message":"answered by the fault proxy"}' % code.encode()
    return (
        b"HTTP/1.1 " + status.encode() + b"\r\n"
        b"Content-Type: application/x-amz-json-1.0\r\n"
        b"x-amzn-query-error: " + query_code.encode() + b";Sender\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


#: Throttling (retried by botocore's standard mode, and by the lean path).
THROTTLED_RESPONSE = aws_error("400 Bad Request", "ThrottlingException", "Throttling")
#: A 503 without an error code AWS would send (retried as a 5xx).
UNAVAILABLE_RESPONSE = aws_error("503 Service Unavailable", "ServiceUnavailable", "ServiceUnavailable")


def _take_request(buffer: bytearray) -> bytes | None:
    """Remove and return the first complete HTTP request of ``buffer`` (framed by its
    Content-Length, as botocore sends them), or ``None`` while it is incomplete."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    length = 0
    for line in bytes(buffer[:end]).split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    total = end + 4 + length
    if len(buffer) < total:
        return None
    request = bytes(buffer[:total])
    del buffer[:total]
    return request


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN (SO_LINGER on, timeout 0)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class FaultProxy:
    """``with FaultProxy(upstream_port) as proxy: proxy.endpoint_url; proxy.cut(); proxy.restore()``"""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1", latency: float = 0.0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.latency = latency
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._open = threading.Event()
        self._open.set()
        self._reset_mode = False
        #: Increased at every cut; a connection that saw an older generation is stale.
        self._generation = 0
        self._connections: set[tuple[socket.socket, socket.socket | None]] = set()
        self._closed = threading.Event()
        self._accepter = threading.Thread(target=self._accept_loop, name="fault-proxy-accept", daemon=True)
        self._fail_containing: bytes | None = None
        self._fail_left: int | None = None
        self._fail_response = FAILED_RESPONSE
        #: Connections accepted in all, bytes forwarded (both ways), requests failed.
        self.accepted = 0
        self.forwarded_bytes = 0
        self.failed_requests = 0

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def is_cut(self) -> bool:
        return not self._open.is_set()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._accepter.start()
        return self

    def close(self) -> None:
        self._closed.set()
        self._open.set()  # wake held connections so they end
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        except OSError:
            pass
        try:
            self._listener.close()
        except OSError:
            pass
        self._reset_all()
        self._accepter.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- faults --------------------------------------------------------------------------

    def cut(self, *, reset: bool = False) -> None:
        """Stop forwarding: a silent blackhole, or (``reset=True``) connection resets."""
        with self._lock:
            self._generation += 1
            self._reset_mode = reset
            self._open.clear()
        if reset:
            self._reset_all()

    def restore(self) -> None:
        """Forward again. Connections that lived through a blackhole are reset (their bytes
        were lost); new connections are forwarded normally."""
        with self._lock:
            self._reset_mode = False
            self._open.set()

    def fail_requests(
        self, containing: bytes | None, *, times: int | None = None, response: bytes = FAILED_RESPONSE
    ) -> None:
        """Answer every request whose bytes contain ``containing`` with an HTTP 500 (or
        ``response``), the first ``times`` such requests only if given, or (with ``None``)
        forward everything again. Set it while no request is in flight: requests are framed
        one by one only while a rule is set."""
        with self._lock:
            self._fail_containing = containing
            self._fail_left = times
            self._fail_response = response

    def _failing(self, request: bytes) -> bytes | None:
        """The answer to give ``request`` instead of forwarding it, if a rule matches it."""
        with self._lock:
            containing, left = self._fail_containing, self._fail_left
            if containing is None or containing not in request or left == 0:
                return None
            if left is not None:
                self._fail_left = left - 1
            self.failed_requests += 1
            return self._fail_response

    def _reset_all(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for client, upstream in connections:
            _reset(client)
            if upstream is not None:
                _reset(upstream)

    # -- forwarding ----------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # listener closed
            with self._lock:
                self.accepted += 1
                refuse = self._reset_mode
                generation = self._generation
            if refuse:
                _reset(client)
                continue
            threading.Thread(
                target=self._serve, args=(client, generation), name="fault-proxy-conn", daemon=True
            ).start()

    def _stale(self, generation: int) -> bool:
        with self._lock:
            return generation != self._generation

    def _wait_open(self, generation: int) -> bool:
        """Hold while cut. False if the connection must end (it lived through a cut)."""
        while not self._open.wait(POLL_SECONDS):
            if self._closed.is_set():
                return False
        return not self._stale(generation) and not self._closed.is_set()

    def _serve(self, client: socket.socket, generation: int) -> None:
        upstream: socket.socket | None = None
        entry: tuple[socket.socket, socket.socket | None] = (client, None)
        with self._lock:
            self._connections.add(entry)
        try:
            if not self._wait_open(generation):
                return
            upstream = socket.create_connection(self.upstream, timeout=5)
            upstream.settimeout(None)
            with self._lock:
                self._connections.discard(entry)
                entry = (client, upstream)
                self._connections.add(entry)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._pump(client, upstream, generation)
        except (OSError, ValueError):  # ValueError: select on a socket reset by cut()
            pass
        finally:
            with self._lock:
                self._connections.discard(entry)
            if self._stale(generation) or self._closed.is_set():
                _reset(client)
                if upstream is not None:
                    _reset(upstream)
            else:
                client.close()
                if upstream is not None:
                    upstream.close()

    def _pump(self, client: socket.socket, upstream: socket.socket, generation: int) -> None:
        partial = bytearray()  # a request from the client not yet complete (while failing some)
        while True:
            if not self._open.is_set() and not self._wait_open(generation):
                return  # cut: the bytes of this flow are lost, it is reset at restore
            if self._stale(generation):
                return
            readable, _, _ = select.select([client, upstream], [], [], POLL_SECONDS)
            if not self._open.is_set():
                continue  # read nothing during a cut: it is held, then reset
            for sock in readable:
                data = sock.recv(CHUNK)
                if not data:
                    return
                if sock is client:
                    if self.latency:
                        time.sleep(self.latency)
                    self._from_client(partial, data, client, upstream)
                else:
                    client.sendall(data)
                with self._lock:
                    self.forwarded_bytes += len(data)

    def _from_client(
        self, partial: bytearray, data: bytes, client: socket.socket, upstream: socket.socket
    ) -> None:
        """Forward a client's bytes; while a ``fail_requests`` rule is set, request by request,
        answering those that match it instead."""
        with self._lock:
            containing = self._fail_containing
        if containing is None and not partial:
            upstream.sendall(data)
            return
        partial += data
        while (request := _take_request(partial)) is not None:
            answer = self._failing(request)
            if answer is not None:
                client.sendall(answer)
            else:
                upstream.sendall(request)
