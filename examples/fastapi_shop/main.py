"""The shop's tasks behind a FastAPI service: ``await task.adelay(...)`` sends without
blocking the event loop, so one process serves many requests while SQS answers.

    uvicorn examples.fastapi_shop.main:api      # or any ASGI server (hypercorn, granian)
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from cloudq import Task
from examples.shop.tasks import update_participants


class Participants(BaseModel):
    participants: int


def create_api(task: Task[[int, int], Any]) -> FastAPI:
    """The service, around the task that updates an event's participants."""
    api = FastAPI(title="shop")

    @api.post("/events/{event_id}/participants", status_code=202)
    async def set_participants(event_id: int, body: Participants) -> dict[str, str]:
        result = await task.adelay(event_id, body.participants)
        return {"task_id": result.id}

    return api


api = create_api(update_participants)
