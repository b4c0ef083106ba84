"""The Django example's view with its enqueue: response time through the Django test client
(in-process, no HTTP server), PostgreSQL on 127.0.0.1:5432 and SQS on the ministack server.

    .venv/bin/python bench/bench_django.py [--requests 300]

Prints the view's p50/p95 (create or update the Event row in a transaction, then
``delay_on_commit`` sends at commit), and the p50 of the enqueue alone (``.delay()``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "django_events"
sys.path[:0] = [str(ROOT), str(EXAMPLE)]

import psycopg  # noqa: E402

from cloudq.infra import app_resources  # noqa: E402
from cloudq_emulator.provision import provision  # noqa: E402
from cloudq_emulator.server import MinistackServer  # noqa: E402

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres", "autocommit": True}


def timed(fn: Callable[[], object], count: int) -> list[float]:
    """Milliseconds of each of ``count`` calls, after 10 warm-up calls."""
    for _ in range(10):
        fn()
    times = []
    for _ in range(count):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    count = parser.parse_args().requests
    database = f"cloudq_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(**PG) as admin:  # type: ignore[arg-type]
        admin.execute(f'CREATE DATABASE "{database}"')
    try:
        with MinistackServer() as server:
            os.environ.update(server.environment())
            os.environ.update(DJANGO_SETTINGS_MODULE="eventsite.settings_emulator", EVENTS_DB_NAME=database)
            import django
            from django.core.management import call_command
            from django.test import Client

            django.setup()
            call_command("migrate", verbosity=0)
            from events.tasks import update_participants
            from eventsite.cloudq_app import app

            provision(app_resources(app), endpoint_url=server.endpoint_url)
            client = Client()
            body = json.dumps({"participants": 23})

            def request() -> None:
                response = client.post("/events/bench/participants", body, content_type="application/json")
                assert response.status_code == 202

            view = timed(request, count)
            enqueue = timed(lambda: update_participants.delay(1, 23), count)
            from django.db import connections

            connections.close_all()
    finally:
        with psycopg.connect(**PG) as admin:  # type: ignore[arg-type]
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    p95 = statistics.quantiles(view, n=20)[18]
    p50 = statistics.median(view)
    print(f"Django view with delay_on_commit: p50 {p50:.1f} ms, p95 {p95:.1f} ms ({count} requests)")
    print(f"the enqueue alone (.delay() to SQS on ministack): p50 {statistics.median(enqueue):.1f} ms")


if __name__ == "__main__":
    main()
