"""The example end to end: the Django test client, real ``cloudq worker`` processes on the
ministack server, and PostgreSQL shared by both (a committed database, not a test
transaction: ``on_commit`` must fire and the worker must see the rows)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from cloudq import ResultRecord, State

MANAGED = "eventsite.cloudq_app:app"
UNMANAGED = "events.tests.unmanaged_app:app"


def post(name: str, participants: int) -> dict[str, Any]:
    from django.test import Client

    response = Client().post(
        f"/events/{name}/participants",
        json.dumps({"participants": participants}),
        content_type="application/json",
    )
    assert response.status_code == 202, response.content
    body: dict[str, Any] = response.json()
    return body


def test_the_view_answers_at_once_and_a_worker_updates_the_row(
    django_env: dict[str, str], start_worker: Callable[..., Any]
) -> None:
    from django.test import Client

    from events.models import Event
    from eventsite.cloudq_app import app

    # Given no worker yet: the view answers with the task id; the row is saved, not updated
    body = post(f"launch-{uuid.uuid4().hex[:6]}", 23)
    event = Event.objects.get(pk=body["event_id"])
    assert (event.requested, event.participants) == (23, 0)
    assert Client().get(f"/tasks/{body['task_id']}").json()["state"] == "PENDING"
    # When a real worker process starts (it loads the app module only: the task is found by
    # autodiscovery of events.tasks, since DJANGO_SETTINGS_MODULE is set)
    start_worker("-c", "2", "--wait", "1", app=MANAGED)
    # Then it runs the task: the result comes by the id the view returned, the row is updated
    assert app.AsyncResult(body["task_id"]).get(timeout=60) == 23
    event.refresh_from_db()
    assert event.participants == 23
    status = Client().get(f"/tasks/{body['task_id']}").json()
    assert status == {"task_id": body["task_id"], "state": "SUCCESS", "result": 23}


def test_an_enqueue_inside_a_rolled_back_transaction_sends_nothing(django_env: dict[str, str]) -> None:
    from django.db import transaction

    from events.models import Event
    from events.tasks import update_participants
    from eventsite.cloudq_app import app

    def messages() -> int:  # in the queue, whatever their state
        stats = app.transport.stats(update_participants.queue)
        return stats.visible + stats.in_flight + stats.delayed

    before = messages()
    # Given a transaction that enqueues on commit, then fails
    with pytest.raises(RuntimeError), transaction.atomic():
        event = Event.objects.create(name=f"rolled-back-{uuid.uuid4().hex[:6]}")
        result = update_participants.delay_on_commit(event.id, 5)
        assert result.id  # known at once, before the commit
        raise RuntimeError("the request fails")
    # Then nothing was sent, and the row is gone too
    assert messages() == before
    assert not Event.objects.filter(pk=event.id).exists()
    assert app.AsyncResult(result.id).state is State.PENDING


def test_a_model_instance_for_an_id_parameter_is_refused_with_the_hint(django_env: dict[str, str]) -> None:
    from cloudq import ArgumentError
    from events.models import Event
    from events.tasks import update_participants

    event = Event.objects.create(name=f"object-{uuid.uuid4().hex[:6]}")
    with pytest.raises(ArgumentError) as refused:
        update_participants.delay(event, 3)  # type: ignore[arg-type]
    message = str(refused.value)
    assert "'event_id'" in message and "Event" in message and "pass an id" in message


# -- dropped database connections -------------------------------------------------------------


def drop_worker_connections(database: str) -> int:
    """Terminate every other session on ``database`` (a restart or failover, as the worker sees
    it); this process's own Django connection is closed and reopens on next use."""
    import psycopg
    from django.db import connection

    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    connection.close()
    return sum(1 for (terminated,) in rows if terminated)


def settled(app: Any, task_ids: list[str], timeout: float = 60) -> list[ResultRecord]:
    """Wait until each task's first attempt has ended (SUCCESS, RETRY or FAILURE)."""
    assert app.backend is not None
    deadline = time.monotonic() + timeout
    while True:
        records = app.backend.get_many(task_ids)
        if all(
            records.get(i) and records[i].state in (State.SUCCESS, State.RETRY, State.FAILURE)
            for i in task_ids
        ):
            return [records[i] for i in task_ids]
        assert time.monotonic() < deadline, f"tasks did not run within {timeout} s"
        time.sleep(0.1)


def connection_drop_scenario(
    reference: str, database: str, start_worker: Callable[..., Any], rounds: int = 3, per_round: int = 6
) -> tuple[list[ResultRecord], int]:
    """A worker with 2 threads runs rounds of tasks; between rounds PostgreSQL drops all its
    connections. Returns the records of the tasks sent after a drop, and how many
    connections were dropped."""
    from events.models import Event
    from events.tasks import update_participants
    from eventsite.cloudq_app import app

    event = Event.objects.create(name=f"drops-{uuid.uuid4().hex[:6]}")
    start_worker("-c", "2", "--wait", "1", app=reference)
    later: list[ResultRecord] = []
    dropped = 0
    for round_number in range(rounds):
        results = [update_participants.delay(event.id, round_number * 100 + i) for i in range(per_round)]
        records = settled(app, [result.id for result in results])
        if round_number > 0:
            later.extend(records)
        dropped += drop_worker_connections(database)
    return later, dropped


def all_succeeded_first_time(records: list[ResultRecord]) -> bool:
    return all(record.state is State.SUCCESS and record.attempts == 1 for record in records)


def test_tasks_after_the_database_drops_the_workers_connections_succeed(
    django_env: dict[str, str], start_worker: Callable[..., Any]
) -> None:
    later, dropped = connection_drop_scenario(MANAGED, django_env["EVENTS_DB_NAME"], start_worker)
    assert dropped >= 2  # the two threads' connections, each round
    assert all_succeeded_first_time(later), [(r.state, r.error_type, r.error_message) for r in later]


def test_without_the_connection_handling_the_same_scenario_fails(
    django_env: dict[str, str], start_worker: Callable[..., Any]
) -> None:
    # The hooks are what makes the test above pass: switched off, the threads keep their
    # dead connections and the tasks fail.
    later, _ = connection_drop_scenario(UNMANAGED, django_env["EVENTS_DB_NAME"], start_worker, rounds=2)
    assert not all_succeeded_first_time(later)
    assert {record.error_type for record in later} & {"OperationalError", "InterfaceError"}


def test_settings_come_from_settings_cloudq_between_arguments_and_the_environment(
    django_env: dict[str, str],
) -> None:
    from cloudq.contrib.django import DjangoCloudQ
    from eventsite.cloudq_app import app

    # settings.CLOUDQ (settings_emulator: wait_seconds 5, result_ttl 7 days) over CLOUDQ_WAIT_SECONDS=1
    assert django_env["CLOUDQ_WAIT_SECONDS"] == "1"
    assert (app.settings.wait_seconds, app.settings.result_ttl) == (5, 7 * 86_400)
    # a constructor argument over settings.CLOUDQ; a default where neither says anything
    other = DjangoCloudQ("events-other", wait_seconds=2)
    assert (other.settings.wait_seconds, other.settings.max_retries) == (2, 3)
