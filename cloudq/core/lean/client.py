"""A lean client: the hot calls of one AWS JSON-protocol service, signed here and sent over the
lean path's own keep-alive connections (``cloudq.core.lean.http``), with the method names,
arguments, answers and errors of a boto3 client.

Every other method is the boto3 client's (``fallback``), made on first use: the control plane
(queue attributes, tables, schedules) keeps botocore. Retries are botocore's standard mode:
throttling codes, 5xx answers and connection errors, up to ``attempts`` tries, waiting
``random() * min(2 ** (try - 1), 20)`` seconds between them.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cloudq.core.lean import errors
from cloudq.core.lean.http import HTTPFailure, Pool
from cloudq.core.lean.sigv4 import Credentials, Signer

MAX_BACKOFF_SECONDS = 20.0
POOL_SIZE = 64


@dataclass(frozen=True)
class Service:
    """A JSON 1.0 service: its signing name, its ``X-Amz-Target`` prefix, and its hot calls
    (boto3 method name: operation)."""

    name: str
    target_prefix: str
    operations: dict[str, str]


@dataclass(frozen=True)
class ClientMeta:
    """What engines read of a boto3 client's ``meta``."""

    service_name: str
    region_name: str
    endpoint_url: str


class LeanClient:
    """Use ``cloudq.core.aws.aws_client(..., http="lean")``; engines never build one. Its
    subclasses (``CLASSES``) name the ``service`` and have a method per hot call."""

    service: Service

    def __init__(
        self,
        *,
        endpoint_url: str,
        region: str,
        credentials: Callable[[], Credentials],
        read_timeout: float,
        connect_timeout: float,
        attempts: int,
        user_agent: str,
        verify: str | None = None,
        fallback: Callable[[], Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.meta = ClientMeta(self.service.name, region, endpoint_url)
        self._credentials = credentials
        self._signer = Signer(self.service.name, region)
        parts = urlsplit(endpoint_url)
        self._host = parts.netloc
        self._url = endpoint_url.rstrip("/") + "/"
        self._path = parts.path.rstrip("/") + "/"
        self._attempts = max(1, attempts)
        self._user_agent = user_agent
        self._http = Pool(
            endpoint_url,
            maxsize=POOL_SIZE,
            verify=verify,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        self._fallback = fallback
        self._boto: Any = None
        self._lock = threading.Lock()
        #: How retries wait (a test records the backoff through it).
        self.sleep = sleep

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._boto_client(), name)

    def _boto_client(self) -> Any:
        if self._fallback is None:
            raise AttributeError(f"the lean {self.service.name} client has no fallback for other calls")
        with self._lock:
            if self._boto is None:
                self._boto = self._fallback()
        return self._boto

    def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """One call, retried as botocore's standard mode retries it."""
        body = json.dumps(params, separators=(",", ":")).encode()
        attempt = 1
        while True:
            try:
                status, headers, data = self._send(operation, body)
            except HTTPFailure as exc:
                if attempt >= self._attempts:
                    raise errors.connection_error(exc, self._url, self._http.proxy) from None
            else:
                if status < 300:
                    answer: dict[str, Any] = json.loads(data) if data else {}
                    answer["ResponseMetadata"] = errors.metadata(status, headers, attempt - 1)
                    return answer
                response = errors.error_response(status, headers, data)
                response["ResponseMetadata"]["RetryAttempts"] = attempt - 1
                if attempt >= self._attempts:  # botocore says so in the message
                    response["ResponseMetadata"]["MaxAttemptsReached"] = True
                    raise errors.client_error(response, operation)
                if not errors.retryable(status, response["Error"]["Code"]):
                    raise errors.client_error(response, operation)
            self.sleep(random.random() * min(2.0 ** (attempt - 1), MAX_BACKOFF_SECONDS))
            attempt += 1

    def _send(self, operation: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        credentials = self._credentials()
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "Host": self._host,
            "X-Amz-Date": amz_date,
            "X-Amz-Target": f"{self.service.target_prefix}.{operation}",
        }
        if credentials.token:
            headers["X-Amz-Security-Token"] = credentials.token
        payload_hash = hashlib.sha256(body).hexdigest()
        headers["Authorization"] = self._signer.authorization(
            "POST", self._path, headers, payload_hash, credentials, amz_date
        )
        headers["User-Agent"] = self._user_agent
        return self._http.request(self._path, headers, body)

    def close(self) -> None:
        self._http.close()
        if self._boto is not None:
            self._boto.close()


def _operation(name: str) -> Callable[..., dict[str, Any]]:
    def call(self: LeanClient, **params: Any) -> dict[str, Any]:
        return self.call(name, params)

    call.__name__ = call.__qualname__ = name
    return call


SQS = Service(
    "sqs",
    "AmazonSQS",
    {
        "get_queue_url": "GetQueueUrl",
        "receive_message": "ReceiveMessage",
        "delete_message_batch": "DeleteMessageBatch",
        "change_message_visibility": "ChangeMessageVisibility",
        "change_message_visibility_batch": "ChangeMessageVisibilityBatch",
        "send_message": "SendMessage",
        "send_message_batch": "SendMessageBatch",
    },
)
DYNAMODB = Service(
    "dynamodb",
    "DynamoDB_20120810",
    {
        "get_item": "GetItem",
        "put_item": "PutItem",
        "update_item": "UpdateItem",
        "batch_get_item": "BatchGetItem",
    },
)
SERVICES = {service.name: service for service in (SQS, DYNAMODB)}


def client_class(service: Service) -> type[LeanClient]:
    """``LeanClient`` with one method per hot call of ``service``."""
    methods: dict[str, Any] = {m: _operation(operation) for m, operation in service.operations.items()}
    methods["service"] = service
    return type(f"Lean{service.target_prefix}Client", (LeanClient,), methods)


CLASSES = {name: client_class(service) for name, service in SERVICES.items()}
