"""What botocore did for the engines, done by the lean path (``aws_http="lean"``) on ministack:
the same cloudq errors with the same messages, standard-mode retries of throttling and 5xx
answers with backoff, and the environment's proxy. The whole conformance suite also runs on
lean engines (``sqs-ministack-lean``, ``dynamodb-ministack-lean``)."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

from cloudq.backends.dynamodb import DynamoDBBackend
from cloudq.core.aws import aws_client
from cloudq.core.errors import BackendError, CloudQError, CredentialsError, QueueNotFoundError, TransportError
from cloudq.core.lean.client import LeanClient
from cloudq.transports.base import OutgoingMessage
from cloudq.transports.sqs import SQSTransport
from cloudq_emulator.server import MinistackServer, free_port
from tests.chaos.fault_proxy import THROTTLED_RESPONSE, UNAVAILABLE_RESPONSE, FaultProxy

ROOT = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
SQS_POLICY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:*", "Resource": "*"}]}
)


@pytest.fixture
def aws_env(
    ministack_auth: tuple[MinistackServer, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> MinistackServer:
    """The ministack server that authenticates requests, and an IAM user's key
    (``tests/conformance/conftest.py``), in the environment."""
    server, key = ministack_auth
    for name, value in {**server.environment(), **key}.items():
        monkeypatch.setenv(name, value)
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    return server


def _clients(service: str, endpoint_url: str, **options: Any) -> dict[str, Any]:
    options = {"read_timeout": 5, **options}
    return {
        path: aws_client(service, endpoint_url, "us-east-1", http=path, **options)
        for path in ("boto3", "lean")
    }


def _error(call: Any, *args: Any) -> CloudQError:
    with pytest.raises(CloudQError) as raised:
        call(*args)
    return raised.value


def test_the_lean_factory_serves_the_hot_calls_and_boto3_the_others(aws_env: MinistackServer) -> None:
    lean = aws_client("sqs", aws_env.endpoint_url, "us-east-1", read_timeout=5, http="lean")
    assert isinstance(lean, LeanClient)
    assert (lean.meta.region_name, lean.meta.endpoint_url) == ("us-east-1", aws_env.endpoint_url)
    name = f"lean-{uuid.uuid4().hex[:8]}"
    url = lean.create_queue(QueueName=name)["QueueUrl"]  # not a hot call: boto3's
    assert lean.get_queue_url(QueueName=name)["QueueUrl"] == url
    transport = SQSTransport("", client=lean)
    [sent] = transport.send(name, [OutgoingMessage("hello", attributes={"k": "v"})])
    [got] = transport.receive(name, wait_seconds=1)
    assert (got.message_id, got.body, got.attributes["k"]) == (sent.message_id, "hello", "v")
    assert transport.stats(name).in_flight == 1  # GetQueueAttributes, through boto3
    transport.close()


def test_errors_are_the_same_cloudq_errors_with_the_same_messages(aws_env: MinistackServer) -> None:
    errors: dict[str, list[CloudQError]] = {}
    for path, sqs in _clients("sqs", aws_env.endpoint_url).items():
        errors[path] = [_error(SQSTransport("nope-", client=sqs).check_queues, ["emails"])]
    for path, dynamodb in _clients("dynamodb", aws_env.endpoint_url).items():
        errors[path].append(_error(DynamoDBBackend("no-such-results", client=dynamodb).get, "x"))
    assert [type(e) for e in errors["lean"]] == [QueueNotFoundError, BackendError]
    # The request ids differ; nothing else does.
    assert [str(e) for e in errors["lean"]] == [str(e) for e in errors["boto3"]]


def test_a_wrong_signature_is_refused_as_boto3s_is(
    aws_env: MinistackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a queue the IAM user's key reaches on the lean path
    name = f"lean-{uuid.uuid4().hex[:8]}"
    lean = aws_client("sqs", aws_env.endpoint_url, "us-east-1", read_timeout=5, http="lean")
    url = lean.create_queue(QueueName=name)["QueueUrl"]
    assert lean.get_queue_url(QueueName=name)["QueueUrl"] == url
    # When it is asked for with a wrong secret, the server refuses both paths alike
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    refused = [
        _error(SQSTransport("", client=sqs).check_queues, [name])
        for sqs in _clients("sqs", aws_env.endpoint_url, attempts=1).values()
    ]
    assert [type(e) for e in refused] == [TransportError, TransportError]
    assert "SignatureDoesNotMatch" in str(refused[1])
    assert str(refused[1]) == str(refused[0])


def test_an_unreachable_endpoint_and_missing_credentials_are_the_same_errors(
    aws_env: MinistackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    unreachable = [
        _error(SQSTransport("x-", client=client).check_queues, ["q"])
        for client in _clients("sqs", closed, connect_timeout=1, attempts=1).values()
    ]
    assert [type(e) for e in unreachable] == [TransportError, TransportError]
    assert str(unreachable[1]) == str(unreachable[0])
    assert str(unreachable[1]).startswith("SQS unreachable for queue 'x-q': Could not connect")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    lean = aws_client("sqs", closed, "us-east-1", read_timeout=1, attempts=1, http="lean")
    with pytest.raises(CredentialsError, match="no AWS credentials for SQS: Unable to locate credentials"):
        SQSTransport("x-", client=lean).check_queues(["q"])


@pytest.fixture
def proxied(aws_env: MinistackServer) -> Iterator[tuple[FaultProxy, str]]:
    """A fault proxy in front of ministack, and a queue's URL."""
    sqs = aws_client("sqs", aws_env.endpoint_url, "us-east-1", read_timeout=5)
    url = sqs.create_queue(QueueName=f"lean-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    with FaultProxy(aws_env.port) as proxy:
        yield proxy, url


@pytest.mark.parametrize("answer", [THROTTLED_RESPONSE, UNAVAILABLE_RESPONSE], ids=["throttled", "503"])
def test_throttling_and_503_are_retried_with_backoff_then_succeed(
    proxied: tuple[FaultProxy, str], answer: bytes
) -> None:
    proxy, url = proxied
    lean = aws_client("sqs", proxy.endpoint_url, "us-east-1", read_timeout=5, attempts=3, http="lean")
    waits: list[float] = []
    lean.sleep = waits.append
    proxy.fail_requests(b"AmazonSQS.SendMessage", times=2, response=answer)
    response = lean.send_message(QueueUrl=url, MessageBody="after two refusals")
    assert response["MessageId"] and response["ResponseMetadata"]["RetryAttempts"] == 2
    assert proxy.failed_requests == 2
    # botocore standard mode's jittered exponential backoff: random() * 2 ** (retry - 1) seconds
    assert len(waits) == 2 and 0 <= waits[0] <= 1 and 0 <= waits[1] <= 2


def test_retries_end_at_the_attempts_and_the_last_refusal_is_the_error(
    proxied: tuple[FaultProxy, str],
) -> None:
    proxy, url = proxied
    lean = aws_client("sqs", proxy.endpoint_url, "us-east-1", read_timeout=5, attempts=2, http="lean")
    lean.sleep = lambda seconds: None
    proxy.fail_requests(b"AmazonSQS.SendMessageBatch", response=THROTTLED_RESPONSE)
    queue = url.rsplit("/", 1)[-1]
    refused = (
        rf"SQS Throttling on queue '{queue}': An error occurred \(Throttling\) when calling the "
        r"SendMessageBatch operation \(reached max retries: 1\)"
    )
    with pytest.raises(TransportError, match=refused):
        SQSTransport("", client=lean).send(queue, [OutgoingMessage("x")])
    assert proxy.failed_requests == 2


class _ForwardProxy(BaseHTTPRequestHandler):
    """A plain HTTP forward proxy: records each request's target, then forwards it."""

    protocol_version = "HTTP/1.1"
    seen: list[str] = []

    def do_POST(self) -> None:
        self.seen.append(self.path)
        target = urlsplit(self.path)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        upstream = http.client.HTTPConnection(target.hostname or "", target.port, timeout=5)
        upstream.request("POST", target.path or "/", body, dict(self.headers.items()))
        answer = upstream.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        upstream.close()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_the_environments_proxy_is_used_unless_no_proxy_names_the_host(
    aws_env: MinistackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ForwardProxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _ForwardProxy.seen = []
    try:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_address[1]}")
        lean = aws_client("sqs", aws_env.endpoint_url, "us-east-1", read_timeout=5, http="lean")
        name = f"lean-{uuid.uuid4().hex[:8]}"
        lean.create_queue(QueueName=name)
        lean.get_queue_url(QueueName=name)
        assert f"{aws_env.endpoint_url}/" in _ForwardProxy.seen
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        seen = len(_ForwardProxy.seen)
        aws_client("sqs", aws_env.endpoint_url, "us-east-1", read_timeout=5, http="lean").get_queue_url(
            QueueName=name
        )
        assert len(_ForwardProxy.seen) == seen
    finally:
        server.shutdown()
        server.server_close()


CREDENTIAL_PROCESS = """
import datetime, json, pathlib, sys
key = json.loads(pathlib.Path(sys.argv[1]).read_text())
soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)
print(json.dumps({"Version": 1, **key, "Expiration": soon.isoformat()}))
"""


def test_credentials_that_change_mid_run_are_picked_up(
    aws_env: MinistackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an IAM user with two keys, and a credential process handing out the first, as
    # expiring within botocore's refresh window (so botocore asks the process at every use)
    iam = boto3.client("iam", endpoint_url=aws_env.endpoint_url, region_name="us-east-1", **ROOT)
    user = f"rotating-{uuid.uuid4().hex[:6]}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="sqs", PolicyDocument=SQS_POLICY)
    first, second = (iam.create_access_key(UserName=user)["AccessKey"] for _ in range(2))
    current = tmp_path / "key.json"

    def hand_out(key: dict[str, Any]) -> None:
        current.write_text(json.dumps({k: key[k] for k in ("AccessKeyId", "SecretAccessKey")}))

    hand_out(first)
    (tmp_path / "process.py").write_text(CREDENTIAL_PROCESS)
    config = tmp_path / "config"
    config.write_text(
        f"[default]\ncredential_process = {sys.executable} {tmp_path / 'process.py'} {current}\n"
    )
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    lean = aws_client("sqs", aws_env.endpoint_url, "us-east-1", read_timeout=5, attempts=1, http="lean")
    url = lean.create_queue(QueueName=user)["QueueUrl"]
    lean.send_message(QueueUrl=url, MessageBody="with the first key")
    # When the process hands out the second key and the first is deleted
    hand_out(second)
    iam.delete_access_key(UserName=user, AccessKeyId=first["AccessKeyId"])
    # Then the client goes on with the second, without being made again
    lean.send_message(QueueUrl=url, MessageBody="with the second key")
    assert len(lean.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])) >= 1


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by itself (a CA nobody trusts), and its key."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cloudq test CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


class _TLSFront(_ForwardProxy):
    """HTTPS in front of ministack: forwards each request to ``upstream``."""

    upstream = ""

    def do_POST(self) -> None:
        self.path = self.upstream + self.path
        super().do_POST()


def test_tls_is_verified_and_aws_ca_bundle_is_honoured(
    aws_env: MinistackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ssl

    cert_file, key_file = _self_signed(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TLSFront)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    _TLSFront.upstream = aws_env.endpoint_url
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"https://127.0.0.1:{server.server_address[1]}"
    try:
        name = f"lean-{uuid.uuid4().hex[:8]}"
        aws_client("sqs", aws_env.endpoint_url, "us-east-1", read_timeout=5).create_queue(QueueName=name)
        # An endpoint whose certificate comes from an unknown CA is refused
        lean = aws_client("sqs", endpoint, "us-east-1", read_timeout=5, attempts=1, http="lean")
        with pytest.raises(TransportError, match="SSL validation failed"):
            SQSTransport("", client=lean).check_queues([name])
        # and accepted with that CA in AWS_CA_BUNDLE
        monkeypatch.setenv("AWS_CA_BUNDLE", str(cert_file))
        lean = aws_client("sqs", endpoint, "us-east-1", read_timeout=5, attempts=1, http="lean")
        assert lean.get_queue_url(QueueName=name)["QueueUrl"].endswith(name)
    finally:
        server.shutdown()
        server.server_close()


def test_on_lambda_the_endpoint_is_the_one_botocore_resolves(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "cloudq-test")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    for fips in ("false", "true"):  # FIPS names are botocore's to resolve (lean on its client)
        monkeypatch.setenv("AWS_USE_FIPS_ENDPOINT", fips)
        for service in ("sqs", "dynamodb"):
            for region in ("us-east-1", "eu-west-1", "cn-north-1", "us-gov-west-1"):
                botocores = boto3.client(service, region_name=region, **ROOT).meta.endpoint_url
                lean = aws_client(service, None, region, read_timeout=1, http="lean")
                assert lean.meta.endpoint_url == botocores, (service, region, fips)


def test_on_lambda_the_lean_path_makes_no_boto3_client(
    aws_env: MinistackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a Lambda function's environment (its credentials and region in variables)
    import botocore.session

    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "cloudq-test")
    made: list[str] = []
    create_client = botocore.session.Session.create_client

    def counted(self: Any, service: str, *args: Any, **kwargs: Any) -> Any:
        made.append(service)
        return create_client(self, service, *args, **kwargs)

    monkeypatch.setattr(botocore.session.Session, "create_client", counted)
    name = f"lean-{uuid.uuid4().hex[:8]}"
    boto3.client("sqs", endpoint_url=aws_env.endpoint_url, region_name="us-east-1", **ROOT).create_queue(
        QueueName=name
    )
    made.clear()
    # When the transport sends and receives on the lean path
    transport = SQSTransport("", client=aws_client("sqs", read_timeout=5, http="lean"))
    transport.send(name, [OutgoingMessage("on Lambda")])
    [got] = transport.receive(name, wait_seconds=1)
    # Then it did so without a boto3 client, which is made for the first other call only
    assert got.body == "on Lambda" and made == []
    assert transport.stats(name).in_flight == 1 and made == ["sqs"]


#: A Lambda function's first invocation in a fresh process: importing botocore or boto3 fails
#: it (an import hook refuses them), as the handler's path on the lean path must not need them.
COLD_INVOCATION = """
import json, os, sys

class Refused:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("boto3", "botocore", "s3transfer"):
            raise ImportError(f"the Lambda path imported {name}")
        return None

sys.meta_path.insert(0, Refused())

class Context:
    function_name = "cloudq-test"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    def get_remaining_time_in_millis(self):
        return 60_000

import cloudq.aws_lambda
record = json.loads(os.environ["RECORD"])
print(json.dumps(cloudq.aws_lambda.handler({"Records": [record]}, Context())))
"""

LAMBDA_APP = """
from cloudq import CloudQ

app = CloudQ("{name}", backend="dynamodb://{name}-results")


@app.task(name="double")
def double(x):
    return 2 * x
"""


def test_on_lambda_the_handlers_path_imports_neither_boto3_nor_botocore(
    aws_env: MinistackServer, tmp_path: Path
) -> None:
    # Given an app with DynamoDB results, deployed, and a Lambda environment on the lean path
    from cloudq import CloudQ, Message
    from cloudq.infra import app_resources
    from cloudq_emulator.provision import provision

    name = f"lean{uuid.uuid4().hex[:8]}"
    (tmp_path / "lambda_app.py").write_text(LAMBDA_APP.format(name=name))
    app = CloudQ(name, backend=f"dynamodb://{name}-results")
    provision(app_resources(app), endpoint_url=aws_env.endpoint_url, client_options=ROOT)
    message = Message(task="double", args=[21])
    queue = app.physical_queue_name("default")
    record = {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": "handle",
        "body": app.encode(message),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
        "eventSourceARN": f"arn:aws:sqs:us-east-1:000000000000:{queue}",
    }
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(Path(__file__).resolve().parents[2])]),
        "AWS_LAMBDA_FUNCTION_NAME": "cloudq-test",
        "AWS_REGION": "us-east-1",
        "CLOUDQ_APP": "lambda_app:app",
        "CLOUDQ_AWS_HTTP": "lean",
        "RECORD": json.dumps(record),
    }
    # When a fresh process handles the record, refusing any import of boto3 or botocore
    done = subprocess.run(
        [sys.executable, "-c", COLD_INVOCATION], env=env, capture_output=True, text=True, timeout=60
    )
    # Then the task ran, its result stored in DynamoDB, with neither imported
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"batchItemFailures": []}, done.stderr
    stored = app.backend.get(message.id)
    assert stored is not None and (stored.state, stored.value) == ("SUCCESS", 42), stored
