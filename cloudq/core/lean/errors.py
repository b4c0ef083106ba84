"""The lean path's failures, raised as botocore raises them: a refused request is a
``botocore.exceptions.ClientError`` with the same ``response`` (``Error.Code``, ``Message``, the
error's own fields such as DynamoDB's ``Item``) and message; a request that got no answer is the
``BotoCoreError`` botocore raises for it. So engines catching botocore's errors see no
difference. botocore is imported only when something fails."""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from cloudq.core.lean import http as lean_http

#: botocore standard mode's throttling codes (``botocore.retries.standard``).
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
#: botocore standard mode's transient codes and statuses.
TRANSIENT_CODES = frozenset({"RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete"})
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})


def error_response(status: int, headers: Mapping[str, str], data: bytes) -> dict[str, Any]:
    """The ``response`` of the ``ClientError`` botocore raises for this answer (JSON 1.0
    protocol; SQS's ``x-amzn-query-error`` header names the code its query protocol had)."""
    try:
        body = json.loads(data) if data else {}
    except ValueError:
        body = None
    if not isinstance(body, dict):  # not AWS's form (a proxy's page): botocore's generic error
        error = {"Code": str(status), "Message": _phrase(status)}
        return {"Error": error, "ResponseMetadata": metadata(status, headers, 0)}
    code = str(body.get("__type") or body.get("code") or "").rsplit("#", 1)[-1] or str(status)
    message = str(body.get("message") or body.get("Message") or "")
    error = {"Message": message, "Code": code}
    query_error = headers.get("x-amzn-query-error")
    if query_error and ";" in query_error:
        error["QueryErrorCode"] = code
        error["Code"], error["Type"] = query_error.split(";", 1)
    fields = {k: v for k, v in body.items() if k not in ("__type", "code", "message", "Message")}
    return {**fields, "Error": error, "ResponseMetadata": metadata(status, headers, 0)}


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def metadata(status: int, headers: Mapping[str, str], retries: int) -> dict[str, Any]:
    return {
        "RequestId": headers.get("x-amzn-requestid", ""),
        "HTTPStatusCode": status,
        "HTTPHeaders": dict(headers),
        "RetryAttempts": retries,
    }


def retryable(status: int, code: str) -> bool:
    return status in TRANSIENT_STATUSES or code in THROTTLING_CODES or code in TRANSIENT_CODES


def client_error(response: dict[str, Any], operation: str) -> Any:
    """botocore's ``ClientError`` (an ``Exception``; botocore is untyped)."""
    from botocore.exceptions import ClientError

    return ClientError(response, operation)


def _masked(proxy_url: str) -> str:
    """The proxy's URL with its credentials masked, as botocore shows it (``***:***@``)."""
    from urllib.parse import urlsplit

    parts = urlsplit(proxy_url)
    if not parts.username:
        return proxy_url
    host = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=f"***:***@{host}").geturl()


def connection_error(exc: Exception, endpoint_url: str, proxy_url: str | None = None) -> Any:
    """The ``BotoCoreError`` botocore raises when its HTTP fails as ``exc`` did."""
    import botocore.exceptions as be

    if isinstance(exc, lean_http.ConnectFailed):
        return be.EndpointConnectionError(endpoint_url=endpoint_url, error=exc)
    if isinstance(exc, lean_http.ConnectTimedOut):
        return be.ConnectTimeoutError(endpoint_url=endpoint_url, error=exc)
    if isinstance(exc, lean_http.ReadTimedOut):
        return be.ReadTimeoutError(endpoint_url=endpoint_url, error=exc)
    if isinstance(exc, lean_http.ProxyFailed):
        return be.ProxyConnectionError(proxy_url=_masked(proxy_url or ""), error=exc)
    if isinstance(exc, lean_http.TLSFailed):
        return be.SSLError(endpoint_url=endpoint_url, error=exc)
    if isinstance(exc, lean_http.ConnectionClosed):
        return be.ConnectionClosedError(endpoint_url=endpoint_url, error=exc)
    return be.HTTPClientError(error=exc)
