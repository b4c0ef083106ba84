"""The W3C ``traceparent`` value (https://www.w3.org/TR/trace-context/): its pattern, new ids,
one hop further. Plain string work, apart from ``cloudq.tracing`` (the public face, spans and
the current trace), so that the envelope can check the field without importing the tracing."""

from __future__ import annotations

import re
import secrets

#: ``version-traceid-parentid-flags``, lowercase hex (https://www.w3.org/TR/trace-context/);
#: the spec's all-zero ids are refused by ``is_traceparent`` (pydantic's regex has no look-ahead).
TRACEPARENT_PATTERN = r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
_TRACEPARENT = re.compile(TRACEPARENT_PATTERN)
#: The sampled flag, set on traces cloudq starts itself.
SAMPLED = "01"


def new_traceparent() -> str:
    """A new trace: random trace id and span id, sampled."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-{SAMPLED}"


def is_traceparent(value: str) -> bool:
    if not _TRACEPARENT.match(value):
        return False
    _, trace, span, _ = value.split("-")
    return trace != "0" * 32 and span != "0" * 16


def trace_id(traceparent: str) -> str:
    """The 32-hex-digit trace id of a ``traceparent``."""
    return traceparent.split("-")[1]


def child(traceparent: str) -> str:
    """The same trace and flags, a new span id (one hop further)."""
    version, trace, _, flags = traceparent.split("-")
    return f"{version}-{trace}-{secrets.token_hex(8)}-{flags}"
