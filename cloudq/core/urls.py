"""Parse engine URLs (``sqs://?endpoint_url=…``, ``redis://host:6379/0``, ``dynamodb://table``)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from cloudq.core.errors import ConfigurationError


@dataclass(frozen=True)
class EngineURL:
    scheme: str
    #: ``netloc`` + ``path`` without the leading ``//`` (a table, bucket/prefix, host:port/db).
    location: str
    options: dict[str, str]
    raw: str


def parse_url(url: str, known_schemes: tuple[str, ...], what: str) -> EngineURL:
    parts = urlsplit(url)
    if parts.scheme not in known_schemes:
        known = ", ".join(f"{scheme}://" for scheme in known_schemes)
        raise ConfigurationError(f"unknown {what} URL {url!r}; use one of: {known}")
    location = (parts.netloc + parts.path).strip("/")
    return EngineURL(parts.scheme, location, dict(parse_qsl(parts.query)), url)
