"""Fixtures of the Django example's tests: a fresh PostgreSQL database on 127.0.0.1:5432
(committed, so real ``cloudq worker`` processes share it), Django set up on it in this
process, the example's queues and table on the ministack server, and worker processes.

PostgreSQL must be running (trust auth, user postgres); if it is not, every test fails with
a message saying so.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudq_emulator.server import MinistackServer

HERE = Path(__file__).resolve().parent
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
SETTINGS = "eventsite.settings_emulator"


def _admin_connection() -> Any:
    import psycopg

    try:
        return psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=5, **PG)
    except psycopg.OperationalError as exc:
        pytest.fail(
            "PostgreSQL is not reachable on 127.0.0.1:5432 as user postgres (trust auth); start it "
            f"(e.g. `service postgresql start`). {str(exc).strip()}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A new, empty database for this session, dropped at the end."""
    name = f"cloudq_events_{uuid.uuid4().hex[:10]}"
    with _admin_connection() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield name
    with _admin_connection() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def django_env(pg_database: str, ministack_server: MinistackServer) -> Iterator[dict[str, str]]:
    """This process set up as the example's web node: Django on the session's database,
    cloudq on the ministack server with the example's queues and table. Returns the
    environment for its worker processes."""
    import django
    from django.core.management import call_command

    from cloudq.infra import app_resources
    from cloudq_emulator.provision import provision

    env = {
        **ministack_server.environment(),
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "EVENTS_DB_NAME": pg_database,
        "CLOUDQ_WAIT_SECONDS": "1",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        patch.syspath_prepend(str(HERE))
        django.setup()
        call_command("migrate", verbosity=0)
        import events.tasks  # noqa: F401 - registers the tasks, as autodiscovery does on a worker
        from eventsite.cloudq_app import app

        provision(app_resources(app), endpoint_url=ministack_server.endpoint_url)
        yield {**os.environ, "PYTHONPATH": str(HERE)}


WorkerFactory = Callable[..., subprocess.Popen[str]]


@pytest.fixture
def start_worker(django_env: dict[str, str], tmp_path: Path) -> Iterator[WorkerFactory]:
    """``start_worker(reference, *args)`` runs ``cloudq worker reference *args`` in the
    example's folder; each is stopped (SIGTERM) at the end of the test."""
    from tests.processes import worker_processes

    with worker_processes(django_env, tmp_path, cwd=HERE) as start:
        yield start


def run_python(code: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``python -c code`` in the example's folder."""
    return subprocess.run(
        [sys.executable, "-c", code], cwd=HERE, env=env, capture_output=True, text=True, timeout=timeout
    )
