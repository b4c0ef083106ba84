"""One suite per protocol, run against every engine. A new engine is one more entry in
``TRANSPORTS`` / ``BACKENDS``: a function that yields a ready engine for one test.

Transports get two logical queues, ``work`` and ``orders.fifo`` (each with its dead-letter
queue), with a 2 s visibility timeout so visibility tests stay short.
"""

from __future__ import annotations

import functools
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest

from cloudq.backends.base import ResultBackend
from cloudq.backends.dynamodb import DynamoDBBackend
from cloudq.backends.memory import MemoryBackend
from cloudq.core.clock import ManualClock
from cloudq.infra.model import QueueResource, Resources, TableResource
from cloudq.payloads.base import PayloadStore
from cloudq.payloads.memory import MemoryPayloadStore
from cloudq.payloads.s3 import S3PayloadStore
from cloudq.transports.base import Transport, dead_letter_queue_name, is_fifo
from cloudq.transports.memory import MemoryTransport
from cloudq.transports.sqs import SQSTransport
from cloudq_emulator.moto_engine import MotoEngine
from cloudq_emulator.provision import provision
from cloudq_emulator.server import MinistackServer

VISIBILITY_TIMEOUT = 2
QUEUES = ("work", "orders.fifo")

EngineFactory = Callable[[pytest.FixtureRequest], Any]


def _resources(prefix: str, table: str | None = None) -> Resources:
    queues = [
        QueueResource(
            logical_name=queue,
            name=prefix + queue,
            dead_letter_name=prefix + dead_letter_queue_name(queue),
            fifo=is_fifo(queue),
            visibility_timeout=VISIBILITY_TIMEOUT,
            max_receive_count=100,
        )
        for queue in QUEUES
    ]
    # One stack per engine instance: the app name is the unique prefix.
    app = (prefix + (table or "")).strip("-")
    return Resources(app=app, queues=queues, table=TableResource(name=table) if table else None)


CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


def _client(service: str, endpoint_url: str | None) -> Any:
    return boto3.client(service, endpoint_url=endpoint_url, region_name="us-east-1", **CREDENTIALS)


@functools.cache
def _moto_session() -> boto3.session.Session:
    """One boto3 session for every moto engine of the run. moto gives boto3 a new default
    session at each start, and a new session loads each service model again (0.3 s a client,
    most of a moto test's set-up); the models are the same every time. Made once moto is
    imported: a session takes moto's request hook when it is made."""
    return boto3.session.Session()


@contextmanager
def _moto() -> Iterator[None]:
    with MotoEngine():
        # boto3.client() uses it; moto puts the default session back at its stop
        boto3.DEFAULT_SESSION = _moto_session()
        yield


@contextmanager
def _memory_transport(request: pytest.FixtureRequest) -> Iterator[Transport]:
    # On a manual clock: ``pass_time`` moves it instead of sleeping.
    yield MemoryTransport(visibility_timeout=VISIBILITY_TIMEOUT, clock=ManualClock())


@contextmanager
def _sqs_on(endpoint_url: str | None) -> Iterator[Transport]:
    prefix = f"c{uuid.uuid4().hex[:10]}-"
    client = _client("sqs", endpoint_url)
    provision(_resources(prefix), endpoint_url=endpoint_url, client_options=CREDENTIALS)
    yield SQSTransport(prefix, client=client)


@contextmanager
def _sqs_moto(request: pytest.FixtureRequest) -> Iterator[Transport]:
    with _moto(), _sqs_on(None) as transport:
        yield transport


@contextmanager
def _sqs_ministack(request: pytest.FixtureRequest) -> Iterator[Transport]:
    server: MinistackServer = request.getfixturevalue("ministack_server")
    with _sqs_on(server.endpoint_url) as transport:
        yield transport


@pytest.fixture(scope="session")
def ministack_auth() -> Iterator[tuple[MinistackServer, dict[str, str]]]:
    """A second ministack server, with request authentication on (signatures verified, IAM
    enforced), and the key of an IAM user allowed SQS and DynamoDB: the lean path's engines
    run there, so a request it signs wrongly fails the suite. Queues and tables are made
    with the root key (``CREDENTIALS``)."""
    with MinistackServer(authenticate=True) as server:
        iam = _client("iam", server.endpoint_url)
        user = "cloudq-worker"
        iam.create_user(UserName=user)
        policy = {"Effect": "Allow", "Action": ["sqs:*", "dynamodb:*"], "Resource": "*"}
        iam.put_user_policy(
            UserName=user,
            PolicyName="data",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [policy]}),
        )
        key = iam.create_access_key(UserName=user)["AccessKey"]
        yield (
            server,
            {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]},
        )


@contextmanager
def _lean_environment(request: pytest.FixtureRequest) -> Iterator[MinistackServer]:
    """The authenticating ministack server, its endpoint and the IAM user's key in the
    environment for the lean path's clients, which come from the one client factory as in
    an app."""
    server, key = request.getfixturevalue("ministack_auth")
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    for name, value in {**server.environment(), **key}.items():
        monkeypatch.setenv(name, value)
    yield server


@contextmanager
def _sqs_ministack_lean(request: pytest.FixtureRequest) -> Iterator[Transport]:
    from cloudq.transports.sqs import default_client

    with _lean_environment(request) as server, _sqs_on(server.endpoint_url) as transport:
        yield SQSTransport(transport.prefix, client=default_client(server.endpoint_url, "us-east-1", "lean"))


@contextmanager
def _memory_backend(request: pytest.FixtureRequest) -> Iterator[ResultBackend]:
    yield MemoryBackend()


@contextmanager
def _dynamodb_on(endpoint_url: str | None) -> Iterator[ResultBackend]:
    table = f"c{uuid.uuid4().hex[:10]}-results"
    client = _client("dynamodb", endpoint_url)
    provision(
        _resources("", table).model_copy(update={"queues": []}),
        endpoint_url=endpoint_url,
        client_options=CREDENTIALS,
    )
    yield DynamoDBBackend(table, client=client)


@contextmanager
def _dynamodb_moto(request: pytest.FixtureRequest) -> Iterator[ResultBackend]:
    with _moto(), _dynamodb_on(None) as backend:
        yield backend


@contextmanager
def _dynamodb_ministack(request: pytest.FixtureRequest) -> Iterator[ResultBackend]:
    server: MinistackServer = request.getfixturevalue("ministack_server")
    with _dynamodb_on(server.endpoint_url) as backend:
        yield backend


@contextmanager
def _dynamodb_ministack_lean(request: pytest.FixtureRequest) -> Iterator[ResultBackend]:
    from cloudq.backends.dynamodb import DynamoDBBackend, default_client

    with _lean_environment(request) as server, _dynamodb_on(server.endpoint_url) as backend:
        assert isinstance(backend, DynamoDBBackend)
        client = default_client(server.endpoint_url, "us-east-1", "lean")
        yield DynamoDBBackend(backend.table, client=client, clock=backend.clock)


REDIS_URL = "redis://127.0.0.1:6379/0"


@contextmanager
def _redis_client() -> Iterator[tuple[Any, str]]:
    """A client of the real redis-server and a unique key prefix; this test's keys are deleted
    afterwards (never FLUSHALL). Fails, never skips, when the server is down."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(
            f"redis-server is not reachable on 127.0.0.1:6379 ({exc}); start it with: "
            "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no",
            pytrace=False,
        )
    prefix = f"c{uuid.uuid4().hex[:10]}-"
    try:
        yield client, prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


@contextmanager
def _redis_transport(request: pytest.FixtureRequest) -> Iterator[Transport]:
    from cloudq.transports.redis import RedisTransport

    with _redis_client() as (client, prefix):
        yield RedisTransport(client, prefix, visibility_timeout=VISIBILITY_TIMEOUT)


@contextmanager
def _redis_backend(request: pytest.FixtureRequest) -> Iterator[ResultBackend]:
    from cloudq.backends.redis import RedisBackend

    with _redis_client() as (client, prefix):
        yield RedisBackend(client, prefix)


AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"


def amqp_transport_or_fail(prefix: str, **options: Any) -> Transport:
    """An ``AMQPTransport`` on the real RabbitMQ; fails, never skips, when it is down."""
    from cloudq.core.errors import TransportError
    from cloudq.transports.amqp import AMQPTransport

    transport = AMQPTransport.from_url(AMQP_URL, prefix, connect_timeout=3, **options)
    try:
        transport.check_queues(QUEUES)
    except TransportError as exc:
        pytest.fail(
            f"RabbitMQ is not reachable on 127.0.0.1:5672 as guest/guest ({exc}); start it with: "
            "rabbitmq-server -detached (RabbitMQ 3.10+)",
            pytrace=False,
        )
    return transport


@contextmanager
def _amqp_transport(request: pytest.FixtureRequest) -> Iterator[Transport]:
    prefix = f"c{uuid.uuid4().hex[:10]}-"
    transport = amqp_transport_or_fail(prefix)
    try:
        yield transport
    finally:
        transport.close()
        delete_amqp_queues(prefix)


def delete_amqp_queues(prefix: str) -> None:
    """Delete the queues a test declared (their names start with its unique prefix)."""
    import amqp

    connection = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest", connect_timeout=3)
    connection.connect()
    channel = connection.channel()
    names = [prefix + queue for queue in QUEUES]
    names += [prefix + dead_letter_queue_name(queue) for queue in QUEUES]
    names += [f"{name}.delay-{seconds}s" for name in names for seconds in range(1, 4)]
    for name in names:
        channel.queue_delete(name)
    connection.close()


TRANSPORTS: dict[str, Callable[[pytest.FixtureRequest], Any]] = {
    "amqp": _amqp_transport,
    "memory": _memory_transport,
    "sqs-moto": _sqs_moto,
    "sqs-ministack": _sqs_ministack,
    "sqs-ministack-lean": _sqs_ministack_lean,
    "redis": _redis_transport,
}
BACKENDS: dict[str, Callable[[pytest.FixtureRequest], Any]] = {
    "memory": _memory_backend,
    "dynamodb-moto": _dynamodb_moto,
    "dynamodb-ministack": _dynamodb_ministack,
    "dynamodb-ministack-lean": _dynamodb_ministack_lean,
    "redis": _redis_backend,
}


@contextmanager
def _memory_payloads(request: pytest.FixtureRequest) -> Iterator[PayloadStore]:
    yield MemoryPayloadStore("p/")


@contextmanager
def _s3_on(endpoint_url: str | None) -> Iterator[PayloadStore]:
    bucket = f"c{uuid.uuid4().hex[:10]}-payloads"
    client = _client("s3", endpoint_url)
    client.create_bucket(Bucket=bucket)
    yield S3PayloadStore(bucket, "cloudq/", client=client)


@contextmanager
def _s3_moto(request: pytest.FixtureRequest) -> Iterator[PayloadStore]:
    with _moto(), _s3_on(None) as store:
        yield store


@contextmanager
def _s3_ministack(request: pytest.FixtureRequest) -> Iterator[PayloadStore]:
    server: MinistackServer = request.getfixturevalue("ministack_server")
    with _s3_on(server.endpoint_url) as store:
        yield store


@contextmanager
def _redis_payloads(request: pytest.FixtureRequest) -> Iterator[PayloadStore]:
    from cloudq.payloads.redis import RedisPayloadStore

    with _redis_client() as (client, prefix):
        yield RedisPayloadStore(client, prefix, ttl_seconds=60)


PAYLOAD_STORES: dict[str, Callable[[pytest.FixtureRequest], Any]] = {
    "memory": _memory_payloads,
    "s3-moto": _s3_moto,
    "s3-ministack": _s3_ministack,
    "redis": _redis_payloads,
}


@pytest.fixture(params=sorted(PAYLOAD_STORES))
def payload_store(request: pytest.FixtureRequest) -> Iterator[PayloadStore]:
    with PAYLOAD_STORES[request.param](request) as engine:
        yield engine


#: ``CLOUDQ_LEAN=full`` (``make lean``) runs the whole suite on the lean path's engines; else
#: (``make test``) these tests, which mostly sleep through visibility timeouts and delays on
#: the same calls other tests make, run on the boto3 path only.
LEAN_FULL = os.environ.get("CLOUDQ_LEAN", "").lower() == "full"
LEAN_LONG = {
    "test_extending_visibility_keeps_a_message_hidden_past_the_timeout",
    "test_extend_visibility_extends_a_batch_and_ignores_stale_handles",
    "test_an_acked_message_never_comes_back_and_acking_twice_is_fine",
    "test_a_received_message_is_hidden_then_comes_back_with_a_higher_count",
    "test_dead_letter_moves_the_body_with_a_reason_and_removes_it",
    "test_delay_seconds_hide_a_message_until_then",
    "test_a_fifo_queue_takes_a_repeated_deduplication_id_or_body_once",
    "test_an_empty_receive_waits_then_returns_nothing",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if LEAN_FULL:
        return
    long = [item for item in items if "-lean]" in item.nodeid and item.name.split("[")[0] in LEAN_LONG]
    if long:
        config.hook.pytest_deselected(items=long)
        items[:] = [item for item in items if item not in long]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs_capability(name): skipped on engines whose `name` attribute is False"
    )


@pytest.fixture(params=sorted(TRANSPORTS))
def transport(request: pytest.FixtureRequest) -> Iterator[Transport]:
    with TRANSPORTS[request.param](request) as engine:
        for marker in request.node.iter_markers("needs_capability"):
            [capability] = marker.args
            if not getattr(engine, capability):
                pytest.skip(f"{request.param} declares {capability} = False ({marker.kwargs['why']})")
        yield engine


@pytest.fixture
def pass_time(transport: Transport) -> Callable[[float], None]:
    """Let seconds pass for the transport's messages: the memory engine's manual clock moves;
    the other engines keep real time (a server's, or moto's), so there the test sleeps."""
    if isinstance(transport, MemoryTransport) and isinstance(transport.clock, ManualClock):
        return transport.clock.advance
    return time.sleep


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Iterator[ResultBackend]:
    with BACKENDS[request.param](request) as engine:
        yield engine
