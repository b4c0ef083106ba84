"""The lean path's SigV4 signer against AWS's published test vectors (the "aws-sig-v4-test-suite":
credentials AKIDEXAMPLE, 2015-08-30T12:36:00Z, region us-east-1, service ``service``)."""

from __future__ import annotations

import hashlib

from cloudq.core.lean.sigv4 import Credentials, Signer

SUITE = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
DATE = "20150830T123600Z"
PREFIX = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "


def _sign(method: str, headers: dict[str, str], body: bytes = b"") -> str:
    headers = {"Host": "example.amazonaws.com", "X-Amz-Date": DATE, **headers}
    return Signer("service", "us-east-1").authorization(
        method, "/", headers, hashlib.sha256(body).hexdigest(), SUITE, DATE
    )


def test_get_vanilla() -> None:
    assert _sign("GET", {}) == PREFIX + (
        "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )


def test_post_vanilla() -> None:
    assert _sign("POST", {}) == PREFIX + (
        "SignedHeaders=host;x-amz-date, "
        "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
    )


def test_post_x_www_form_urlencoded_signs_the_body_and_its_type() -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    assert _sign("POST", headers, b"Param1=value1") == PREFIX + (
        "SignedHeaders=content-type;host;x-amz-date, "
        "Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
    )


def test_the_signing_key_follows_the_day_and_the_secret() -> None:
    signer = Signer("service", "us-east-1")
    first = signer.signing_key(SUITE.secret_key, "20150830")
    assert signer.signing_key(SUITE.secret_key, "20150830") is first
    assert signer.signing_key(SUITE.secret_key, "20150831") != first
    assert signer.signing_key("another", "20150831") != signer.signing_key(SUITE.secret_key, "20150831")
