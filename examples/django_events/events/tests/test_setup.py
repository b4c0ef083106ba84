"""Starting a worker on a Django project: one line when Django is not set up, and
``manage.py test`` on the in-process engines (no AWS, no worker)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cloudq_emulator.server import free_port

HERE = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=HERE, env=env, capture_output=True, text=True, timeout=120)


def without_django_settings() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}


@pytest.mark.parametrize(
    "command",
    [
        ("worker", "events.tasks:app"),
        ("emulator", "up", "--port", str(free_port()), "--app", "events.tasks:app"),
    ],
)
def test_a_tasks_module_importing_models_without_django_settings_is_one_line(
    command: tuple[str, ...],
) -> None:
    done = run(sys.executable, "-m", "cloudq", *command, env=without_django_settings())
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("cloudq: error: cannot import module 'events.tasks': ImproperlyConfigured: ")
    assert "set DJANGO_SETTINGS_MODULE" in line


def test_a_broken_settings_module_is_one_line_naming_it() -> None:
    env = {**without_django_settings(), "DJANGO_SETTINGS_MODULE": "eventsite.no_such_settings"}
    done = run(sys.executable, "-m", "cloudq", "worker", "eventsite.cloudq_app:app", env=env)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert "cannot import module 'eventsite.cloudq_app'" in line and "eventsite.no_such_settings" in line


def test_manage_py_test_runs_tasks_on_memory_engines_without_aws(pg_database: str) -> None:
    # Given AWS pointed at a closed port: any call to it would fail
    env = {
        **without_django_settings(),
        "EVENTS_DB_NAME": pg_database,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    }
    # When the project's own Django tests run, as a Django user runs them
    done = run(sys.executable, "manage.py", "test", "events.tests.django_tests", "--noinput", env=env)
    # Then they pass: the view enqueued on commit and the task ran in-process
    assert done.returncode == 0, done.stderr
    assert "OK" in done.stderr


def test_import_cloudq_does_not_import_django() -> None:
    code = "import sys, cloudq, cloudq.testing; assert 'django' not in sys.modules, 'django imported'"
    done = run(sys.executable, "-c", code, env=without_django_settings())
    assert done.returncode == 0, done.stderr
