"""``sqs://``: Amazon SQS through boto3.

Queue URLs are resolved once (GetQueueUrl) and cached; runtime code never creates or lists
queues. Sends and deletes are batched (10 entries, and under the 1 MiB request limit). Every
botocore error is mapped to a cloudq error in ``_mapped``; none reaches the caller.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from cloudq.core import aws_errors
from cloudq.core.aws import aws_client
from cloudq.core.config import SEND_ATTEMPTS, SEND_TIMEOUT_SECONDS
from cloudq.core.errors import CredentialsError, QueueNotFoundError, TransportError
from cloudq.core.naming import is_celery_queue, physical_name
from cloudq.transports import kombu_forms
from cloudq.transports.base import (
    SQS_LIMITS,
    OutgoingMessage,
    QueueStats,
    ReceivedMessage,
    SendResult,
    check_size,
    dead_letter_attributes,
    dead_letter_queue_name,
    fifo_deduplication_id,
    is_fifo,
    not_sent,
    refused_body,
    require_sent,
)

SQS_BATCH = SQS_LIMITS.batch_size
#: A send of more batches than this to a standard queue sends them on this many threads.
SEND_THREADS = 4
SQS_MAX_DELAY_SECONDS = SQS_LIMITS.max_delay_seconds
SQS_MAX_MESSAGE_BYTES = SQS_LIMITS.max_message_bytes
#: Message attributes per message, at most (emulators do not refuse more; AWS does).
SQS_MAX_MESSAGE_ATTRIBUTES = 10
#: A received message stays hidden at most 12 hours in all (ChangeMessageVisibility's ceiling).
SQS_MAX_VISIBILITY_SECONDS = SQS_LIMITS.max_visibility_seconds
#: The whole SendMessageBatch request is limited to 1 MiB too; keep headroom for the JSON.
SQS_MAX_BATCH_BYTES = SQS_MAX_MESSAGE_BYTES - 16 * 1024
MISSING_QUEUE_CODES = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
STALE_HANDLE_CODES = {"ReceiptHandleIsInvalid", "MessageNotInflight", "InvalidParameterValue"}
CREDENTIAL_CODES = {
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidSecurity",
    "AccessDenied",
    "AccessDeniedException",
}


def default_client(
    endpoint_url: str | None = None, region_name: str | None = None, http: str = "boto3"
) -> Any:
    # Above the 20 s long poll.
    return aws_client("sqs", endpoint_url, region_name, read_timeout=30, http=http)


def send_client(
    endpoint_url: str | None = None,
    region_name: str | None = None,
    *,
    timeout: float,
    attempts: int,
    http: str = "boto3",
) -> Any:
    """The client of the send path (``.delay()`` in a web request): short timeouts and few
    attempts, so an unreachable broker fails the caller in seconds."""
    return aws_client(
        "sqs",
        endpoint_url,
        region_name,
        read_timeout=timeout,
        connect_timeout=timeout,
        attempts=attempts,
        http=http,
    )


@contextmanager
def _mapped(queue: str) -> Iterator[None]:
    """The one boundary where botocore errors become cloudq errors."""
    try:
        yield
    except (aws_errors.NoCredentialsError, aws_errors.PartialCredentialsError) as exc:
        raise CredentialsError(f"no AWS credentials for SQS: {exc}") from exc
    except aws_errors.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in MISSING_QUEUE_CODES:
            raise QueueNotFoundError(queue) from exc
        if code in CREDENTIAL_CODES:
            raise CredentialsError(f"AWS refused the credentials for SQS ({code}): {exc}") from exc
        raise TransportError(f"SQS {code} on queue {queue!r}: {exc}") from exc
    except aws_errors.BotoCoreError as exc:
        raise TransportError(f"SQS unreachable for queue {queue!r}: {exc}") from exc


def _attribute_values(attributes: dict[str, str]) -> dict[str, dict[str, str]]:
    return {name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()}


class SQSTransport:
    """SQS queues named ``<prefix><logical name>``, but for Celery queues (``celery_queues``):
    those keep their names and hold kombu's form, base64 of the message JSON the codec reads."""

    max_delay_seconds = SQS_MAX_DELAY_SECONDS
    max_visibility_seconds = SQS_MAX_VISIBILITY_SECONDS
    batch_size = SQS_BATCH
    visibility_timeouts = True
    #: A delete is a request: batched (DeleteMessageBatch, 10 per call).
    immediate_acks = False
    #: FIFO queues deduplicate (``fifo_deduplication_id`` is sent as MessageDeduplicationId).
    deduplication = True

    def __init__(
        self,
        prefix: str = "",
        *,
        client: Any = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        max_message_bytes: int = SQS_MAX_MESSAGE_BYTES,
        send_timeout: float = SEND_TIMEOUT_SECONDS,
        send_attempts: int = SEND_ATTEMPTS,
        celery_queues: Collection[str] = (),
        aws_http: str = "boto3",
    ) -> None:
        self.prefix = prefix
        self.celery_queues = frozenset(celery_queues)
        self.max_message_bytes = min(max_message_bytes, SQS_MAX_MESSAGE_BYTES)
        #: Made on first use: a web process sends only, a worker mostly receives. Sends go
        #: through their own client (an injected client serves both).
        self._clients: dict[str, Any] = {"receive": client, "send": client} if client else {}
        self._make_client = {
            "receive": lambda: default_client(endpoint_url, region_name, aws_http),
            "send": lambda: send_client(
                endpoint_url, region_name, timeout=send_timeout, attempts=send_attempts, http=aws_http
            ),
        }
        self._urls: dict[str, str] = {}
        self._lock = threading.Lock()

    def _get_client(self, role: str) -> Any:
        made = self._clients.get(role)
        if made is None:
            with self._lock:
                made = self._clients.get(role)
                if made is None:
                    made = self._clients[role] = self._make_client[role]()
        return made

    @property
    def _client(self) -> Any:
        return self._get_client("receive")

    @property
    def _send_client(self) -> Any:
        return self._get_client("send")

    def physical_name(self, queue: str) -> str:
        return physical_name(self.prefix, queue, self.celery_queues)

    def _wire(self, queue: str, messages: Sequence[OutgoingMessage]) -> Sequence[OutgoingMessage]:
        """The messages as SQS keeps them: for a Celery queue, kombu's base64 of the body."""
        if not is_celery_queue(queue, self.celery_queues):
            return messages
        return [replace(m, body=kombu_forms.to_sqs(m.body)) for m in messages]

    def describe(self) -> str:
        made = self._clients.get("receive") or self._send_client
        meta = made.meta
        return f"SQS in region {meta.region_name} at {meta.endpoint_url}"

    def _url(self, queue: str, *, sending: bool = False) -> str:
        url = self._urls.get(queue)
        if url is None:
            name = self.physical_name(queue)
            # On the send path, through the send client: a web request's first .delay()
            # resolves the URL, and must fail as fast as the send itself.
            client = self._send_client if sending else self._client
            try:
                with _mapped(name):
                    url = str(client.get_queue_url(QueueName=name)["QueueUrl"])
            except QueueNotFoundError as exc:
                # A wrong region or endpoint reads as a missing queue: say where we looked.
                raise QueueNotFoundError(name, self.describe()) from exc
            with self._lock:
                self._urls[queue] = url
        return url

    def queue_arn(self, queue: str) -> str:
        """The ARN of ``queue`` (an EventBridge Scheduler target), built from its URL, whose
        path starts with the account: no call beyond the URL's (no GetQueueAttributes)."""
        from urllib.parse import urlparse

        from cloudq.core.aws import partition

        account = urlparse(self._url(queue, sending=True)).path.strip("/").split("/")[0]
        region = str(self._send_client.meta.region_name)
        return f"arn:{partition(region)}:sqs:{region}:{account}:{self.physical_name(queue)}"

    def check_queues(self, queues: Sequence[str]) -> None:
        for queue in queues:
            self._url(queue)
            self._url(dead_letter_queue_name(queue))

    # -- send ------------------------------------------------------------------------------

    def _entry(self, index: int, message: OutgoingMessage, fifo: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {"Id": str(index), "MessageBody": message.body}
        if message.attributes:
            entry["MessageAttributes"] = _attribute_values(dict(message.attributes))
        if not fifo and message.group_id:
            # A standard queue takes a group id too: SQS fair queues share the consumers
            # between groups, so one noisy tenant does not hold up the others.
            entry["MessageGroupId"] = message.group_id
        if fifo:
            entry["MessageGroupId"] = message.group_id or "default"
            entry["MessageDeduplicationId"] = fifo_deduplication_id(message)
        elif message.delay_seconds:
            entry["DelaySeconds"] = min(max(int(message.delay_seconds), 0), SQS_MAX_DELAY_SECONDS)
        return entry

    def _batches(self, messages: Sequence[OutgoingMessage]) -> Iterator[list[OutgoingMessage]]:
        batch: list[OutgoingMessage] = []
        size = 0
        for message in messages:
            body_size = len(message.body.encode())
            if batch and (len(batch) == SQS_BATCH or size + body_size > SQS_MAX_BATCH_BYTES):
                yield batch
                batch, size = [], 0
            batch.append(message)
            size += body_size
        if batch:
            yield batch

    def send(self, queue: str, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        url = self._url(queue, sending=True)
        messages = self._wire(queue, messages)
        for message in messages:  # before anything is sent: all of it, or an error
            check_size(message.body, self.max_message_bytes)
        results: list[SendResult] = [SendResult(error=refused_body(m.body)) for m in messages]
        # Bodies SQS would refuse are answered here (emulators accept them); the rest go.
        to_send = [i for i, result in enumerate(results) if result.error is None]
        batches: list[list[int]] = []
        for batch in self._batches([messages[i] for i in to_send]):
            batches.append(to_send[: len(batch)])
            to_send = to_send[len(batch) :]
        failures: list[TransportError] = []

        def send_batch(indexes: list[int]) -> None:
            self._send_batch(queue, url, messages, indexes, results, failures)

        if is_fifo(queue) or len(batches) <= SEND_THREADS:
            # A FIFO queue's batches go one after another: their order is the queue's order.
            for indexes in batches:
                send_batch(indexes)
        else:
            with ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="cloudq-send") as pool:
                list(pool.map(send_batch, batches))
        if failures and not any(result.sent for result in results):
            raise failures[0]  # nothing sent: the caller gets the error itself
        return results

    def _send_batch(
        self,
        queue: str,
        url: str,
        messages: Sequence[OutgoingMessage],
        indexes: list[int],
        results: list[SendResult],
        failures: list[TransportError],
    ) -> None:
        """Send one batch, writing its entries' results; after a failed request (``failures``)
        the batches not sent yet are refused with its reason instead."""
        if failures:
            for i in indexes:
                results[i] = not_sent(str(failures[0]))
            return
        entries = [self._entry(i, messages[i], is_fifo(queue)) for i in indexes]
        try:
            with _mapped(self.physical_name(queue)):
                response = self._send_client.send_message_batch(QueueUrl=url, Entries=entries)
        except TransportError as exc:
            failures.append(exc)
            for i in indexes:
                results[i] = not_sent(str(exc))
            return
        for ok in response.get("Successful", []):
            results[int(ok["Id"])] = SendResult(ok["MessageId"])
        for failed in response.get("Failed", []):
            results[int(failed["Id"])] = SendResult(error=f"{failed.get('Code')}: {failed.get('Message')}")

    # -- receive ---------------------------------------------------------------------------

    def receive(
        self,
        queue: str,
        max_messages: int = 10,
        wait_seconds: float = 20.0,
        visibility_timeout: int | None = None,
    ) -> list[ReceivedMessage]:
        url = self._url(queue)
        request: dict[str, Any] = {
            "QueueUrl": url,
            "MaxNumberOfMessages": max(1, min(max_messages, SQS_BATCH)),
            "WaitTimeSeconds": int(max(0, min(wait_seconds, 20))),
            "MessageSystemAttributeNames": [
                "ApproximateReceiveCount",
                "SentTimestamp",
                "MessageGroupId",
            ],
            "MessageAttributeNames": ["All"],
        }
        if visibility_timeout is not None:
            request["VisibilityTimeout"] = int(visibility_timeout)
        with _mapped(self.physical_name(queue)):
            response = self._client.receive_message(**request)
        received = [self._received(queue, raw) for raw in response.get("Messages", [])]
        if is_celery_queue(queue, self.celery_queues):
            return [replace(message, body=kombu_forms.from_sqs(message.body)) for message in received]
        return received

    @staticmethod
    def _received(queue: str, raw: dict[str, Any]) -> ReceivedMessage:
        system = raw.get("Attributes", {})
        attributes = {
            name: value.get("StringValue", "") for name, value in raw.get("MessageAttributes", {}).items()
        }
        return ReceivedMessage(
            queue=queue,
            message_id=raw["MessageId"],
            receipt_handle=raw["ReceiptHandle"],
            body=raw.get("Body", ""),
            receive_count=int(system.get("ApproximateReceiveCount", 1)),
            sent_timestamp_ms=int(system.get("SentTimestamp", 0)),
            attributes=attributes,
            group_id=system.get("MessageGroupId"),
        )

    # -- settle ----------------------------------------------------------------------------

    def ack(self, queue: str, receipt_handles: Sequence[str]) -> None:
        url = self._url(queue)
        for start in range(0, len(receipt_handles), SQS_BATCH):
            chunk = receipt_handles[start : start + SQS_BATCH]
            entries = [{"Id": str(i), "ReceiptHandle": handle} for i, handle in enumerate(chunk)]
            with _mapped(self.physical_name(queue)):
                response = self._client.delete_message_batch(QueueUrl=url, Entries=entries)
            failed = [f for f in response.get("Failed", []) if f.get("Code") not in STALE_HANDLE_CODES]
            if failed:
                raise TransportError(f"SQS could not delete {len(failed)} message(s): {failed[0]}")

    def change_visibility(self, queue: str, receipt_handle: str, visibility_timeout: int) -> None:
        url = self._url(queue)
        try:
            with _mapped(self.physical_name(queue)):
                self._client.change_message_visibility(
                    QueueUrl=url,
                    ReceiptHandle=receipt_handle,
                    VisibilityTimeout=int(visibility_timeout),
                )
        except TransportError as exc:
            cause = exc.__cause__
            if (
                isinstance(cause, aws_errors.ClientError)
                and cause.response["Error"]["Code"] in STALE_HANDLE_CODES
            ):
                return  # acknowledged or received again since: nothing to change
            raise

    def extend_visibility(self, queue: str, receipt_handles: Sequence[str], visibility_timeout: int) -> None:
        url = self._url(queue)
        not_extended, failures = 0, []
        # Every batch is sent even when one fails: a batch left out would let its messages
        # reappear while their tasks still run (a duplicate run).
        for start in range(0, len(receipt_handles), SQS_BATCH):
            chunk = receipt_handles[start : start + SQS_BATCH]
            failed, failure = self._extend_batch(queue, url, chunk, visibility_timeout)
            not_extended += failed
            if failure:
                failures.append(f"batch {start // SQS_BATCH + 1}: {failure}")
        if failures:
            raise TransportError(
                f"SQS could not extend the visibility of {not_extended} of {len(receipt_handles)} "
                f"message(s) on {queue!r} (every batch was sent): " + "; ".join(failures)
            )

    def _extend_batch(
        self, queue: str, url: str, chunk: Sequence[str], visibility_timeout: int
    ) -> tuple[int, str]:
        """Extend one batch: how many messages failed (stale handles are not failures), and why."""
        entries = [
            {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": int(visibility_timeout)}
            for i, handle in enumerate(chunk)
        ]
        try:
            with _mapped(self.physical_name(queue)):
                response = self._client.change_message_visibility_batch(QueueUrl=url, Entries=entries)
        except (QueueNotFoundError, CredentialsError):
            raise  # every batch would be refused the same way
        except TransportError as exc:
            return len(chunk), str(exc)
        failed = [f for f in response.get("Failed", []) if f.get("Code") not in STALE_HANDLE_CODES]
        if not failed:
            return 0, ""
        first = failed[0]
        return len(failed), f"{len(failed)} refused, first {first.get('Code')}: {first.get('Message')}"

    def dead_letter(self, message: ReceivedMessage, reason: str) -> str:
        attributes = dead_letter_attributes(message, reason, SQS_MAX_MESSAGE_ATTRIBUTES)
        dlq = dead_letter_queue_name(message.queue)
        copy_of = OutgoingMessage(message.body, 0, attributes, message.group_id, message.message_id)
        [copy] = require_sent(dlq, self.send(dlq, [copy_of]))
        self.ack(message.queue, [message.receipt_handle])
        return copy

    def stats(self, queue: str) -> QueueStats:
        url = self._url(queue)
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        with _mapped(self.physical_name(queue)):
            found = self._client.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        visible, in_flight, delayed = (int(found.get(name, 0)) for name in names)
        return QueueStats(visible, in_flight, delayed)

    def close(self) -> None:
        for made in {id(made): made for made in self._clients.values()}.values():
            made.close()
