"""What an app needs on AWS, derived from the app alone: queues (each with its dead-letter
queue and redrive policy) and the result table. Provisioning (``cloudq emulator up``) and
template rendering read this one model, so the two never disagree."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel

from cloudq.transports.base import dead_letter_queue_name, is_fifo

if TYPE_CHECKING:
    from cloudq.app import CloudQ

#: DynamoDB result table layout, shared by the backend and provisioning.
TABLE_KEY = "task_id"
TABLE_TTL_ATTRIBUTE = "expires_at"
#: Redrive headroom over the largest attempt count of a queue's tasks: the executor
#: dead-letters failures itself; the redrive policy only catches messages whose worker died
#: before the executor could (crashes while decoding, poison that kills a process).
REDRIVE_HEADROOM = 3
SQS_DEFAULT_VISIBILITY_TIMEOUT = 30
SQS_MAX_RETENTION_SECONDS = 1_209_600


class QueueResource(BaseModel):
    logical_name: str
    name: str
    dead_letter_name: str
    fifo: bool
    visibility_timeout: int = SQS_DEFAULT_VISIBILITY_TIMEOUT
    max_receive_count: int
    message_retention_seconds: int = SQS_MAX_RETENTION_SECONDS


class TableResource(BaseModel):
    name: str
    key: str = TABLE_KEY
    ttl_attribute: str = TABLE_TTL_ATTRIBUTE


class Resources(BaseModel):
    app: str
    queues: list[QueueResource]
    table: TableResource | None


def app_resources(app: CloudQ) -> Resources:
    """The resources ``app`` uses: one queue per logical queue of its tasks (and the default
    queue), and the DynamoDB result table when its backend is ``dynamodb://``."""
    queues = []
    for logical in sorted(app.queue_names()):
        attempts = max(
            (task.max_retries + 1 for task in app.tasks.values() if task.queue == logical),
            default=app.settings.max_retries + 1,
        )
        queues.append(
            QueueResource(
                logical_name=logical,
                name=app.physical_queue_name(logical),
                dead_letter_name=app.physical_queue_name(dead_letter_queue_name(logical)),
                fifo=is_fifo(logical),
                max_receive_count=attempts + REDRIVE_HEADROOM,
            )
        )
    table = None
    backend = app.settings.backend
    if backend is not None and backend.startswith("dynamodb://"):
        table = TableResource(name=app.result_table_name())
    return Resources(app=app.name, queues=queues, table=table)
