"""The Celery side of the move (issue 25): a real Celery 5 app with the tasks a Celery project
has, run by ``celery -A tests.celery_app worker`` in the e2e tests. Broker and result backend
from ``CELERY_TEST_BROKER`` / ``CELERY_TEST_BACKEND`` (Redis by default)."""

from __future__ import annotations

import os
import time

import redis
from celery import Celery

REDIS_URL = "redis://127.0.0.1:6379/0"

app = Celery(
    "proj",
    broker=os.environ.get("CELERY_TEST_BROKER", REDIS_URL),
    backend=os.environ.get("CELERY_TEST_BACKEND", REDIS_URL),
)
app.conf.update(task_serializer="json", accept_content=["json"], worker_hijack_root_logger=False)


@app.task(name="proj.tasks.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="proj.tasks.count_run")
def count_run(tag: str, seconds: float = 0) -> str:
    """Counts its runs in Redis key ``runs:<tag>``, as cloudq's task of that name does."""
    time.sleep(seconds)
    redis.Redis.from_url(REDIS_URL).incr(f"runs:{tag}")
    return "celery"
