"""The consumer processes of ``bench/run.py``: each drain runs one of these in a fresh process,
which imports only what its consumer uses (its start-up is part of its figures):

    python bench/consumers.py floor|worker|peer:<name> --target URL_OR_APP --tasks N --concurrency C

- ``floor``: ``--concurrency`` raw consumer threads (ReceiveMessage of 10, the backend's two
  writes per message with ``--backend TABLE``, DeleteMessageBatch), on boto3 clients or, with
  ``--http lean``, the lean path's;
- ``worker``: one cloudq worker with ``--concurrency`` threads (``--backend URL``, ``--mode``);
- ``peer:<name>``: a peer's consumer (``bench/peers.py``).

Each prints one JSON line, ``{"done": <time>, "cpu": <user + sys seconds>}``, the moment its
count-th message is deleted.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def floor_clients(http: str, table: str | None) -> tuple[Any, Any]:
    """The floor's clients: plain boto3 ones, or (``lean``) the lean path's, from cloudq's
    factory (``cloudq.core.aws.aws_client(..., http="lean")``: its SigV4 and its own HTTP)."""
    if http == "boto3":
        import boto3  # here, not at the top: a consumer imports only what it uses

        return boto3.client("sqs"), boto3.client("dynamodb") if table else None
    from cloudq.core.aws import aws_client

    sqs = aws_client("sqs", read_timeout=30, http="lean")
    return sqs, aws_client("dynamodb", read_timeout=10, http="lean") if table else None


def consume_floor(url: str, count: int, threads: int, table: str | None, http: str = "boto3") -> None:
    """``threads`` raw consumers: receive 10, (two writes each), delete the batch; through
    boto3 clients, or the same loop on the lean path's (``http="lean"``)."""
    sqs, dynamodb = floor_clients(http, table)
    done = [0]
    lock = threading.Lock()

    def consume() -> None:
        while True:
            with lock:
                if done[0] >= count:
                    return
            got = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            ).get("Messages", [])
            if not got:
                continue
            for message in got if dynamodb else ():
                floor_writes(dynamodb, table, message["MessageId"])  # type: ignore[arg-type]
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
            sqs.delete_message_batch(QueueUrl=url, Entries=entries)
            with lock:
                done[0] += len(got)
                if done[0] >= count and not reported:
                    reported.append(True)
                    report()  # the last delete; the other threads may still be in a poll

    reported: list[bool] = []
    workers = [threading.Thread(target=consume) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


#: The two requests a result backend makes per task, as cloudq's DynamoDB backend makes them
#: (``cloudq/backends/dynamodb.py``, written out here so that the floor process does not import
#: cloudq): the claim, a conditional UpdateItem returning the record, and the result, a
#: conditional PutItem of the whole record.
FLOOR_CLAIM = {
    "UpdateExpression": (
        "SET #state = :started, task_name = :name, lease_owner = :owner, lease_expires_at = :lease,"
        " date_started = :now, lease_message_id = :message, lease_receive_count = :count,"
        " expires_at = :expires ADD attempts :one"
        " REMOVE value_json, value_pointer_json, error_type, error_message, traceback, date_done"
    ),
    "ConditionExpression": (
        "attribute_not_exists(task_id) OR expires_at < :now OR (NOT #state IN (:success, :revoked)"
        " AND (attribute_not_exists(lease_owner) OR lease_expires_at < :now OR lease_owner = :owner"
        " OR (lease_message_id = :message AND lease_receive_count < :count)))"
    ),
    "ExpressionAttributeNames": {"#state": "state"},
    "ReturnValues": "ALL_NEW",
}
FLOOR_RESULT_CONDITION = (
    "attribute_not_exists(task_id) OR expires_at < :now"
    " OR attribute_not_exists(attempts) OR attempts <= :attempt"
)


def floor_writes(dynamodb: Any, table: str, message_id: str) -> None:
    now = time.time()
    owner, expires = f"floor-{os.getpid()}", str(int(now) + 86400)
    values = {
        ":message": {"S": message_id},
        ":count": {"N": "1"},
        ":now": {"N": repr(now)},
        ":success": {"S": "SUCCESS"},
        ":revoked": {"S": "REVOKED"},
        ":started": {"S": "STARTED"},
        ":owner": {"S": owner},
        ":name": {"S": "noop"},
        ":lease": {"N": repr(now + 330)},
        ":one": {"N": "1"},
        ":expires": {"N": expires},
    }
    key = {"task_id": {"S": message_id}}
    dynamodb.update_item(TableName=table, Key=key, ExpressionAttributeValues=values, **FLOOR_CLAIM)
    item = {
        **key,
        "state": {"S": "SUCCESS"},
        "value_json": {"S": "null"},
        "task_name": {"S": "noop"},
        "attempts": {"N": "1"},
        "date_started": {"N": repr(now)},
        "date_done": {"N": repr(time.time())},
        "expires_at": {"N": expires},
    }
    dynamodb.put_item(
        TableName=table,
        Item=item,
        ConditionExpression=FLOOR_RESULT_CONDITION,
        ExpressionAttributeValues={":now": {"N": repr(now)}, ":attempt": {"N": "1"}},
        ReturnValuesOnConditionCheckFailure="ALL_OLD",
    )


def consume_worker(app_name: str, count: int, concurrency: int, backend: str | None, mode: str) -> None:
    """One cloudq worker with ``concurrency`` threads, run until ``count`` tasks are acked."""
    from cloudq import CloudQ
    from cloudq.runtime.logs import configure_logging
    from cloudq.worker import Worker

    configure_logging(batched=True)  # as `cloudq worker` does
    app = make_app(CloudQ, app_name, backend, mode)
    worker = Worker(app, concurrency=concurrency, wait_seconds=1)
    with deletes_returned(app, count) as acked:
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        acked.wait()
        report()
    worker.stop()
    thread.join()


@contextmanager
def deletes_returned(app: Any, count: int) -> Iterator[threading.Event]:
    """An event set once the broker has confirmed ``count`` deletes: the moment the floor
    reports (after its last ``DeleteMessageBatch`` returns). Waiting on it, rather than
    polling ``worker.stats``, keeps the measuring thread off the GIL during the drain, as the
    floor's main thread is (a poll every few ms costs the worker ~10 µs per task)."""
    done = threading.Event()
    lock = threading.Lock()
    acked = [0]
    ack = app.transport.ack

    def counted(queue: str, handles: list[str]) -> None:
        ack(queue, handles)
        with lock:
            acked[0] += len(handles)
            if acked[0] >= count:
                done.set()

    app.transport.ack = counted
    try:
        yield done
    finally:
        del app.transport.ack  # the transport's own method again


def report() -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"done": time.time(), "cpu": usage.ru_utime + usage.ru_stime}), flush=True)


def make_app(cls: Any, name: str, backend: str | None, mode: str = "default") -> Any:
    app = cls(name, backend=backend, wait_seconds=1)
    options = {
        "default": {},
        "ignore_result": {"ignore_result": True},
        "no_claim": {"deduplicate": False},
        "neither": {"ignore_result": True, "deduplicate": False},
    }[mode]
    app.task(name="noop", **options)(_noop)
    return app


def _noop() -> None:
    return None


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("consumer")
    parser.add_argument("--target", required=True)
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--backend")
    parser.add_argument("--mode", default="default")
    parser.add_argument("--http", default="boto3")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    if args.consumer == "floor":
        consume_floor(args.target, args.tasks, args.concurrency, args.backend, args.http)
    elif args.consumer == "worker":
        consume_worker(args.target, args.tasks, args.concurrency, args.backend, args.mode)
    elif args.consumer.startswith("peer:"):
        from bench.peers import PEERS

        PEERS[args.consumer.removeprefix("peer:")].consume(args.target, args.tasks, args.concurrency, report)
    else:
        parser.error(f"unknown consumer {args.consumer!r}")


if __name__ == "__main__":
    main()
