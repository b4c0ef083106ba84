"""The shop's tasks: what a web backend hands off instead of doing in the request."""

from __future__ import annotations

from cloudq import CloudQ

# Broker, backend and the rest come from CLOUDQ_* variables or defaults:
# SQS queues shop-default and shop-emails, results in the DynamoDB table shop-results.
# Welcome emails run on the Lambda function (an SQS trigger); the rest on long-polling workers.
app = CloudQ("shop", lambda_queues=("emails",), lambda_timeout=60)


@app.task
def update_participants(event_id: int, n: int) -> dict[str, int]:
    """Recount an event's participants (the seed's example). Pass the id, not the event."""
    return {"event_id": event_id, "participants": n}


@app.task
def add(a: int, b: int) -> int:
    return a + b


@app.task(queue="emails", max_retries=5, timeout=30)
def send_welcome(user_id: int, template: str = "welcome") -> str:
    return f"sent {template!r} to user {user_id}"
