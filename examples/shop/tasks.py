"""The shop's tasks: what a web backend hands off instead of doing in the request."""

from __future__ import annotations

from typing import Any

from cloudq import CloudQ, Task

# Broker, backend and the rest come from CLOUDQ_* variables or defaults:
# SQS queues shop-default and shop-emails, results in the DynamoDB table shop-results.
# Welcome emails run on the Lambda function (an SQS trigger); the rest on long-polling workers.
# Arguments and results too large for SQS or DynamoDB travel through the S3 bucket below.
app = CloudQ(
    "shop",
    lambda_queues=("emails",),
    lambda_timeout=60,
    payload_store="s3://shop-cloudq-payloads/cloudq",
)


@app.task
def update_participants(event_id: int, n: int) -> dict[str, int]:
    """Recount an event's participants (the seed's example). Pass the id, not the event."""
    return {"event_id": event_id, "participants": n}


@app.task
def add(a: int, b: int) -> int:
    return a + b


@app.task
def total(values: list[int]) -> int:
    """A chord's callback: ``chord(add.s(i, i) for i in range(10))(total.s())``."""
    return sum(values)


@app.task(queue="emails", max_retries=5, timeout=30)
def send_welcome(user_id: int, template: str = "welcome") -> str:
    return f"sent {template!r} to user {user_id}"


@app.task(bind=True, max_retries=10)
def track_parcel(self: Task[..., str], order_id: int, ships_on_attempt: int = 2) -> str:
    """Ask the carrier until the parcel has shipped (here: on attempt ``ships_on_attempt``).
    Each retry leaves the same message in SQS, hidden for the countdown."""
    if self.request.attempt < ships_on_attempt:
        raise self.retry(countdown=1)
    return f"order {order_id} shipped"


@app.task
def price_catalogue(items: list[dict[str, Any]], markup: float = 1.2) -> list[dict[str, Any]]:
    """Price a whole catalogue: megabytes in, megabytes out (through S3, transparently)."""
    return [{**item, "price": round(item.get("cost", 0) * markup, 2)} for item in items]


@app.periodic("rate(1 hour)")
@app.task
def expire_carts(older_than_hours: int = 24) -> str:
    """Run every hour by EventBridge Scheduler on AWS (or by ``cloudq beat``)."""
    return f"expired carts older than {older_than_hours} h"
