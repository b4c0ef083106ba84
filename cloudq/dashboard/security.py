"""Who may open the dashboard and what may change state.

- It binds to loopback unless a token is given (``refusal``).
- The ``Host`` header must name the bound address (no DNS rebinding); a wildcard bind
  (0.0.0.0, ::) cannot be checked that way and relies on the token.
- With a token, every request carries it: ``Authorization: Bearer …``, or the cookie that
  opening ``/?token=…`` once sets (SameSite=Strict, HttpOnly). Without it: 401.
- A POST carries the page's CSRF token (``csrf`` form field), else 403.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN_COOKIE = "cloudq_dashboard_token"
TOKEN_ENV = "CLOUDQ_DASHBOARD_TOKEN"
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def refusal(host: str, token: str | None) -> str | None:
    """Why the dashboard must not bind ``host`` (``None``: it may)."""
    if is_loopback(host) or token:
        return None
    return f"binding {host} needs a token (--token or {TOKEN_ENV}); without one, bind 127.0.0.1"


def allowed_hosts(host: str, port: int) -> frozenset[str] | None:
    """The ``Host`` header values a request may carry; ``None`` for a wildcard bind."""
    if host in WILDCARD_HOSTS:
        return None
    names = {host, "localhost", "127.0.0.1", "[::1]"} if is_loopback(host) else {host}
    names = {f"[{name}]" if ":" in name and not name.startswith("[") else name for name in names}
    found = {f"{name}:{port}" for name in names}
    if port == 80:
        found |= names
    return frozenset(found)


@dataclass(frozen=True)
class Guard:
    """The security settings of one server."""

    host: str
    port: int
    token: str | None = None
    allow_replay: bool = False
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    def csrf_ok(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf.encode())

    def token_ok(self, sent: str | None) -> bool:
        assert self.token is not None
        return sent is not None and hmac.compare_digest(sent.encode(), self.token.encode())


class GuardMiddleware:
    """The Host check and the token, before any page runs."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard
        self.hosts = allowed_hosts(guard.host, guard.port)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response = self._refused(scope)
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)

    def _refused(self, scope: Scope) -> Response | None:
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        if self.hosts is not None and headers.get("host", "").lower() not in self.hosts:
            return PlainTextResponse("400: this Host is not the dashboard's address", status_code=400)
        if self.guard.token is None:
            return None
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if scope["method"] == "GET" and self.guard.token_ok(query.get("token")):
            return _into_cookie(scope["path"], query, self.guard.token)
        if self.guard.token_ok(_bearer(headers.get("authorization", ""))) or self.guard.token_ok(
            _cookie(headers.get("cookie", ""), TOKEN_COOKIE)
        ):
            return None
        return PlainTextResponse(
            "401: this dashboard needs its token: open /?token=… once, or send Authorization: Bearer …",
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )


def _into_cookie(path: str, query: dict[str, str], token: str) -> Response:
    """A token given in the address moves into a cookie, and out of the address bar."""
    rest = urlencode({key: value for key, value in query.items() if key != "token"})
    response = RedirectResponse(path + (f"?{rest}" if rest else ""), status_code=303)
    response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
    return response


def _bearer(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None
