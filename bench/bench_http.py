"""How the lean path's HTTP was chosen: the client CPU of one SQS ``SendMessage`` on ministack,
by each candidate, in one process, the candidates alternating round after round.

    .venv/bin/python bench/bench_http.py [--calls 500] [--rounds 5]

1. a boto3 client, as cloudq configures it (``cloudq.core.aws.aws_client``);
2. cloudq's SigV4 signer, sent over a urllib3 pool (what botocore sends with; the lean path's
   first design);
3. cloudq's signer over the lean path's own HTTP (``cloudq.core.lean``: the design kept);
4. ``awscrt`` (AWS's C runtime) signing, sent over the lean path's own HTTP;
5. ``awscrt`` signing and its own HTTP client.

Every candidate sends the same JSON body with the same headers and must get HTTP 200. The CPU
is the whole process's (``time.process_time``: awscrt's event-loop thread included) per call,
medians of the rounds. The awscrt rows need the ``bench`` extra (``pip install -e '.[bench]'``);
without it they are left out with a line saying so. The new AWS SDK for Python (``aws-sdk-sqs``,
smithy-python) is not a candidate here: a preview, async only, for Python 3.12 and later.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def lean_headers(host: str, body: bytes, signer: Any, credentials: Any) -> dict[str, str]:
    """The headers the lean client sends for ``SendMessage`` (``LeanClient._send``)."""
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "Host": host,
        "X-Amz-Date": amz_date,
        "X-Amz-Target": "AmazonSQS.SendMessage",
    }
    payload_hash = hashlib.sha256(body).hexdigest()
    headers["Authorization"] = signer.authorization("POST", "/", headers, payload_hash, credentials, amz_date)
    headers["User-Agent"] = "cloudq-bench"
    return headers


def candidates(endpoint: str, url: str) -> dict[str, Callable[[], None]]:
    from cloudq.core.aws import aws_client
    from cloudq.core.lean.http import Pool
    from cloudq.core.lean.sigv4 import Credentials, Signer

    host = urlsplit(endpoint).netloc
    region = os.environ.get("AWS_REGION", "us-east-1")
    credentials = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    signer = Signer("sqs", region)
    boto3_client = aws_client("sqs", endpoint, region, read_timeout=10)
    lean_client = aws_client("sqs", endpoint, region, read_timeout=10, http="lean")

    def body() -> bytes:
        return json.dumps(
            {"QueueUrl": url, "MessageBody": f"bench {uuid.uuid4()}"}, separators=(",", ":")
        ).encode()

    def checked(status: int) -> None:
        if status != 200:
            raise RuntimeError(f"HTTP {status}")

    import urllib3

    pool = urllib3.PoolManager(maxsize=4).connection_from_url(endpoint)

    def over_urllib3() -> None:
        data = body()
        headers = lean_headers(host, data, signer, credentials)
        response = pool.urlopen("POST", "/", body=data, headers=headers, retries=False, redirect=False)
        checked(response.status)
        json.loads(response.data)

    found: dict[str, Callable[[], None]] = {
        "boto3 client (as cloudq configures it)": lambda: boto3_client.send_message(
            QueueUrl=url, MessageBody=f"bench {uuid.uuid4()}"
        ),
        "cloudq SigV4 + urllib3": over_urllib3,
        "cloudq SigV4 + own HTTP (the lean path)": lambda: lean_client.send_message(
            QueueUrl=url, MessageBody=f"bench {uuid.uuid4()}"
        ),
    }
    try:
        import awscrt  # noqa: F401
    except ImportError:
        print("  (awscrt is not installed: pip install -e '.[bench]' adds its two rows)")
        return found
    from awscrt.auth import (
        AwsCredentialsProvider,
        AwsSignatureType,
        AwsSigningAlgorithm,
        AwsSigningConfig,
        aws_sign_request,
    )
    from awscrt.http import HttpClientConnection, HttpHeaders, HttpRequest
    from awscrt.io import ClientBootstrap, DefaultHostResolver, EventLoopGroup

    config = AwsSigningConfig(
        algorithm=AwsSigningAlgorithm.V4,
        signature_type=AwsSignatureType.HTTP_REQUEST_HEADERS,
        credentials_provider=AwsCredentialsProvider.new_static(
            credentials.access_key, credentials.secret_key
        ),
        region=region,
        service="sqs",
    )

    def crt_signed(data: bytes) -> HttpRequest:
        import io

        headers = HttpHeaders(
            [
                ("Content-Type", "application/x-amz-json-1.0"),
                ("Host", host),
                ("X-Amz-Target", "AmazonSQS.SendMessage"),
                ("Content-Length", str(len(data))),
            ]
        )
        request = HttpRequest("POST", "/", headers, io.BytesIO(data))
        aws_sign_request(request, config).result()
        return request

    own = Pool(endpoint, maxsize=4, verify=None, connect_timeout=5, read_timeout=10)

    def crt_signing_own_http() -> None:
        data = body()
        request = crt_signed(data)
        headers = {name: value for name, value in request.headers if name != "Content-Length"}
        status, _, answer = own.request("/", {**headers, "User-Agent": "cloudq-bench"}, data)
        checked(status)
        json.loads(answer)

    loop = EventLoopGroup(1)
    bootstrap = ClientBootstrap(loop, DefaultHostResolver(loop))
    parts = urlsplit(endpoint)
    kept: list[Any] = []

    def crt_connection() -> Any:
        """The kept connection, a new one once the server closed it (its keep-alive ends
        while the other candidates run)."""
        if not kept or not kept[0].is_open():
            new = HttpClientConnection.new(
                host_name=parts.hostname, port=parts.port or 80, bootstrap=bootstrap
            )
            kept[:] = [new.result()]
        return kept[0]

    def crt_http() -> None:
        received = bytearray()
        stream = crt_connection().request(
            crt_signed(body()), on_body=lambda http_stream, chunk, **kwargs: received.extend(chunk)
        )
        stream.activate()
        checked(stream.completion_future.result())
        json.loads(received)

    found["awscrt SigV4 + own HTTP"] = crt_signing_own_http
    found["awscrt SigV4 + awscrt HTTP"] = crt_http
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.calls < 1 or args.rounds < 1:
        parser.error("--calls and --rounds must be at least 1")

    import boto3

    from cloudq_emulator.server import MinistackServer

    with MinistackServer() as server:
        os.environ.update(server.environment())
        url = boto3.client("sqs").create_queue(QueueName=f"bench-http-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        rounds = f"{args.calls} calls a round, medians of {args.rounds}"
        print(f"\nClient CPU of one SendMessage on ministack, {rounds}")
        found = candidates(server.endpoint_url, url)
        for call in found.values():  # connections open, first-call costs paid
            call()
        spent: dict[str, list[float]] = {label: [] for label in found}
        for _ in range(args.rounds):
            for label, call in found.items():
                cpu = time.process_time()
                for _ in range(args.calls):
                    call()
                spent[label].append((time.process_time() - cpu) / args.calls * 1e6)
        boto3_us = statistics.median(next(iter(spent.values())))
        for label, values in spent.items():
            us = statistics.median(values)
            print(f"  {label:<42} {us:7,.0f} µs   {us / boto3_us:.2f}x boto3")


if __name__ == "__main__":
    main()
