"""Scenario 3: thousands of hostile messages with valid, signed tasks between them."""

from __future__ import annotations

import time
import uuid
from collections import Counter, defaultdict
from typing import Any

from cloudq import CloudQ, State
from cloudq.core import celery_protocol
from cloudq.core.message import Message
from cloudq.transports import kombu_forms
from tests.chaos.conftest import (
    SQS_MAX_MESSAGE_BYTES,
    Scale,
    WorkerFactory,
    queue_url,
    sqs_client,
    states,
    wait_until,
)
from tests.chaos.hostile import SQS_MAX_ATTRIBUTES, Hostile, celery_garbage, generate, huge
from tests.processes import dead_letter_note

SIGNING_KEY = "chaos-signing-key"
SQS_BATCH = 10
#: SendMessageBatch requests are limited to 1 MiB as a whole.
BATCH_BYTES = 200 * 1024


def _send_all(url: str, entries: list[dict[str, Any]]) -> None:
    """Send fast: batches of 10 small messages; a huge one alone."""
    sqs = sqs_client()
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        if batch:
            sent = sqs.send_message_batch(QueueUrl=url, Entries=batch)
            assert not sent.get("Failed"), sent["Failed"][:3]
            batch.clear()

    for entry in entries:
        if len(entry["MessageBody"].encode()) > BATCH_BYTES // SQS_BATCH:
            flush()
            sqs.send_message(QueueUrl=url, **{k: v for k, v in entry.items() if k != "Id"})
            continue
        batch.append({**entry, "Id": str(len(batch))})
        if len(batch) == SQS_BATCH:
            flush()
    flush()


def _interleave(hostile: list[Hostile], valid_ids: list[str], every: int) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    valid = iter(valid_ids)
    for index, item in enumerate(hostile):
        entry: dict[str, Any] = {"MessageBody": item.body}
        if item.attributes:
            entry["MessageAttributes"] = item.attributes
        entries.append(entry)
        if index % every == every - 1:
            task_id = next(valid)
            body = Message(id=task_id, task="record", args=[task_id]).signed(SIGNING_KEY)
            entries.append({"MessageBody": body.encode(SQS_MAX_MESSAGE_BYTES)})
    return entries


def _drain_dead_letters(url: str, expected: int, timeout: float) -> list[dict[str, Any]]:
    """Receive every message of the DLQ (hidden for the rest of the test), read straight from
    the emulator."""
    sqs = sqs_client()
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < deadline:
        got += sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=SQS_BATCH,
            WaitTimeSeconds=1,
            VisibilityTimeout=900,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
    return got


def _queue_counts(url: str) -> tuple[int, int]:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    found = sqs_client().get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return int(found[names[0]]), int(found[names[1]])


def test_hostile_messages_end_in_the_dlq_with_a_reason_and_the_worker_goes_on(
    chaos_app: CloudQ, start_worker: WorkerFactory, scale: Scale
) -> None:
    # Given hostile bodies and attributes, with valid signed tasks between them
    hostile = generate(SIGNING_KEY, scale.hostile - scale.huge) + huge(SIGNING_KEY, scale.huge)
    hostile.sort(key=lambda item: item.kind == "huge")  # huge ones spread below
    for position in range(scale.huge):
        hostile.insert(position * len(hostile) // scale.huge, hostile.pop())
    valid_ids = [str(uuid.uuid4()) for _ in range(len(hostile) // scale.valid_every)]
    worker = start_worker("-c", "8", env={"CLOUDQ_SIGNING_KEYS": SIGNING_KEY})
    main_url, dlq_url = queue_url(chaos_app, "default"), queue_url(chaos_app, "default-dlq")

    # When they are sent as fast as SQS takes them
    started = time.monotonic()
    _send_all(main_url, _interleave(hostile, valid_ids, scale.valid_every))

    # Then every valid task completes
    timeout = 60 + len(hostile) / 20
    assert wait_until(
        lambda: all(s is State.SUCCESS for s in states(chaos_app, valid_ids).values()), timeout, 1.0
    )
    # And every hostile message ends in the DLQ, once, with the reason it deserves
    assert wait_until(lambda: _queue_counts(dlq_url)[0] >= len(hostile), timeout, 1.0)
    elapsed = time.monotonic() - started
    assert wait_until(lambda: _queue_counts(main_url) == (0, 0), 30, 0.5)
    dead = _drain_dead_letters(dlq_url, len(hostile), timeout=120)
    assert Counter(m["Body"] for m in dead) == Counter(item.body for item in hostile)
    allowed: dict[str, set[str]] = defaultdict(set)
    for item in hostile:
        allowed[item.body].update(item.reasons)
    notes = [dead_letter_note(m) for m in dead]
    reasons = [note.reason if note else "" for note in notes]
    # And each dead letter keeps within SQS's 10 message attributes, whatever it carried
    assert max(len(m.get("MessageAttributes", {})) for m in dead) <= SQS_MAX_ATTRIBUTES
    wrong = [
        (m["Body"][:80], reason)
        for m, reason in zip(dead, reasons, strict=True)
        if not reason.startswith(tuple(allowed[m["Body"]]))
    ]
    kinds = Counter(item.kind for item in hostile)
    known = ("DecodeError", "SignatureError", "ArgumentError", "unknown task")
    by_reason = Counter(next((k for k in known if r.startswith(k)), r[:40]) for r in reasons)
    print(
        f"\n[chaos hostile] hostile={len(hostile)} ({dict(kinds)}) valid={len(valid_ids)} "
        f"dlq={len(dead)} by_reason={dict(by_reason)} wrong_reason={len(wrong)} "
        f"elapsed={elapsed:.1f}s worker_alive={worker.poll() is None}"
    )
    assert wrong == []
    # And the worker never died
    assert worker.poll() is None


def test_celery_shaped_garbage_ends_in_the_dlq_with_its_reason_and_the_worker_goes_on(
    chaos_app: CloudQ, start_worker: WorkerFactory, scale: Scale
) -> None:
    # Given a Celery queue (unsigned, though the app signs) with Celery-shaped garbage on it
    # (bad base64, another protocol, missing headers, YAML or msgpack bodies, a canvas) and
    # valid Celery messages between them
    queue = f"celery-{chaos_app.name}"
    sqs = sqs_client()
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    dlq_url = sqs.create_queue(QueueName=f"{queue}-dlq")["QueueUrl"]
    garbage = celery_garbage(scale.celery_garbage)
    valid_ids = [str(uuid.uuid4()) for _ in range(len(garbage) // scale.valid_every)]
    entries: list[dict[str, Any]] = []
    valid = iter(valid_ids)
    for index, item in enumerate(garbage):
        entries.append({"MessageBody": item.body})
        if index % scale.valid_every == scale.valid_every - 1:
            message = Message(id=next(valid), task="proj.tasks.add", args=[index, 1])
            body = kombu_forms.to_sqs(celery_protocol.encode(message, queue, SQS_MAX_MESSAGE_BYTES))
            entries.append({"MessageBody": body})
    env = {"CLOUDQ_SIGNING_KEYS": SIGNING_KEY, "CLOUDQ_CELERY_QUEUES": queue}
    worker = start_worker("-Q", queue, "-c", "4", env=env)
    # When they are sent
    _send_all(url, entries)
    # Then the valid ones ran, and every piece of garbage is in the DLQ, once, with its reason
    assert wait_until(lambda: all(s is State.SUCCESS for s in states(chaos_app, valid_ids).values()), 60, 0.5)
    assert wait_until(lambda: _queue_counts(dlq_url)[0] >= len(garbage), 60, 0.5)
    dead = _drain_dead_letters(dlq_url, len(garbage), timeout=60)
    assert Counter(m["Body"] for m in dead) == Counter(item.body for item in garbage)
    reasons = {item.body: item.reasons for item in garbage}
    noted = [(m["Body"], dead_letter_note(m)) for m in dead]
    found = [(body, note.reason if note else "") for body, note in noted]
    wrong = [(body[:60], reason) for body, reason in found if not reason.startswith(reasons[body])]
    print(
        f"\n[chaos celery] garbage={len(garbage)} valid={len(valid_ids)} dlq={len(dead)} wrong={len(wrong)}"
    )
    assert wrong == []
    # And the worker never died
    assert worker.poll() is None
