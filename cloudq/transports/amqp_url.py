"""The ``amqp://`` / ``amqps://`` broker URL, read into ``AMQPTransport``'s settings."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from cloudq.core.errors import ConfigurationError


def parse_amqp_url(url: str) -> tuple[str, dict[str, Any]]:
    """``amqp://user:password@host:5672/vhost?delivery_limit=10`` → ``host:port`` and the
    transport's keywords; ``amqps://`` uses TLS (port 5671, as Amazon MQ). The vhost is the
    path: ``//`` or none is ``/``. ``delivery_limit`` is among the keywords only when given."""
    parts = urlsplit(url)
    secure = parts.scheme == "amqps"
    try:
        port = parts.port or (5671 if secure else 5672)
    except ValueError as exc:
        raise ConfigurationError(f"bad port in broker URL {url!r}") from exc
    vhost = unquote(parts.path[1:]) if parts.path not in ("", "/") else "/"
    query = dict(pair.split("=", 1) for pair in parts.query.split("&") if "=" in pair)
    keywords: dict[str, Any] = {
        "userid": unquote(parts.username or "guest"),
        "password": unquote(parts.password or "guest"),
        "virtual_host": vhost,
        "ssl": secure,
    }
    if "delivery_limit" in query:
        keywords["delivery_limit"] = _int_option(url, query["delivery_limit"])
    return f"{parts.hostname or '127.0.0.1'}:{port}", keywords


def _int_option(url: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigurationError(f"delivery_limit in {url!r} must be a whole number") from exc
