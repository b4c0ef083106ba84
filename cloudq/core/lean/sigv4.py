"""AWS Signature Version 4 (header form), with hmac and hashlib only: no botocore.

Specified at https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html and
checked against AWS's published test vectors (tests/unit/test_lean_sigv4.py). It signs what the
lean path sends: requests with no query string whose headers are given as one dict.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"


class Credentials(NamedTuple):
    """One frozen set of credentials (a refreshable source hands out a new one when renewed)."""

    access_key: str
    secret_key: str
    token: str | None = None


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


class Signer:
    """Signs requests for one service in one region. The signing key depends only on the
    secret, the day, the region and the service: it is derived once a day (and again when
    the credentials change), not per request."""

    def __init__(self, service: str, region: str) -> None:
        self.service = service
        self.region = region
        self._key: tuple[str, str, bytes] = ("", "", b"")
        self._lock = threading.Lock()

    def signing_key(self, secret: str, day: str) -> bytes:
        cached_secret, cached_day, key = self._key
        if cached_secret == secret and cached_day == day:
            return key
        key = _hmac(("AWS4" + secret).encode(), day)
        for part in (self.region, self.service, "aws4_request"):
            key = _hmac(key, part)
        with self._lock:
            self._key = (secret, day, key)
        return key

    def authorization(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        payload_hash: str,
        credentials: Credentials,
        amz_date: str,
    ) -> str:
        """The ``Authorization`` header of a request whose ``headers`` already hold ``host`` and
        ``x-amz-date`` (= ``amz_date``, e.g. ``20150830T123600Z``) and, with a session token,
        ``x-amz-security-token``. ``path`` is the absolute path, not yet encoded."""
        canonical = {name.lower(): " ".join(str(value).split()) for name, value in headers.items()}
        names = sorted(canonical)
        signed = ";".join(names)
        request = "\n".join(
            [
                method,
                quote(path, safe="/~"),
                "",
                "".join(f"{name}:{canonical[name]}\n" for name in names),
                signed,
                payload_hash,
            ]
        )
        day = amz_date[:8]
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(request.encode()).hexdigest()])
        signature = hmac.new(
            self.signing_key(credentials.secret_key, day), to_sign.encode(), hashlib.sha256
        ).hexdigest()
        credential = f"{credentials.access_key}/{scope}"
        return f"{ALGORITHM} Credential={credential}, SignedHeaders={signed}, Signature={signature}"
