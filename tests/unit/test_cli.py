"""CLI: user mistakes are one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest


def cloudq(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cloudq", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("no_such_module:app", "cannot import module 'no_such_module'"),
        (
            "tests.import_fails:app",
            "cannot import module 'tests.import_fails': RuntimeError: settings are not configured",
        ),
        ("tests.tasks", "must look like 'module:app'"),
        ("tests.tasks:make_app", "is not a cloudq app"),
        ("tests.tasks:missing", "is not a cloudq app"),
    ],
)
def test_a_bad_app_reference_is_one_line_and_exit_2(reference: str, message: str) -> None:
    done = cloudq("worker", reference)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_an_unknown_queue_is_refused_naming_the_known_ones() -> None:
    done = cloudq("worker", "tests.tasks:app", "-Q", "nope")
    assert done.returncode == 2
    assert "unknown queue(s) nope; app queues: default" in done.stderr


def test_bad_options_are_usage_errors() -> None:
    done = cloudq("worker", "tests.tasks:app", "-c", "0")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--app", "no_such_module:app"], "cannot import module 'no_such_module'"),
        (["--app", "tests.tasks:app", "--watch", "--json"], "--watch and --json do not go together"),
        (["--app", "tests.tasks:app", "--watch", "--cost"], "--watch and --cost do not go together"),
    ],
)
def test_status_refuses_bad_input_in_one_line(args: list[str], message: str) -> None:
    done = cloudq("status", *args)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("option", [["--interval", "0"], ["--window", "0"], ["--metrics", "prometheus"]])
def test_status_bad_options_are_usage_errors(option: list[str]) -> None:
    done = cloudq("status", "--app", "tests.tasks:app", *option)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


def test_help_works_for_every_command() -> None:
    for command in (
        [],
        ["worker"],
        ["demo"],
        ["emulator"],
        ["emulator", "up"],
        ["infra"],
        ["infra", "render"],
        ["revoke"],
        ["status"],
    ):
        done = cloudq(*command, "--help")
        assert done.returncode == 0, done.stderr
        assert "Usage:" in done.stdout


@pytest.mark.parametrize("command", [["emulator", "up"], ["demo"]])
def test_without_the_emulator_its_commands_say_how_to_install_it(command: list[str]) -> None:
    # Given an interpreter where the emulator cannot be imported
    code = "import sys; sys.modules['cloudq_emulator'] = None; from cloudq.cli import main; main()"
    # When one of its commands is run
    done = subprocess.run([sys.executable, "-c", code, *command], capture_output=True, text=True, timeout=60)
    # Then one line says how to install it
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "cloudq: error: the emulator is not installed; pip install 'cloudq-aws[emulator]' "
        "(in this repo: pip install -e ./emulator)"
    ]


def test_the_version_and_install_hints_name_the_distribution() -> None:
    from cloudq.core.distribution import DISTRIBUTION
    from cloudq.core.errors import MissingExtraError

    done = cloudq("--version")
    assert done.returncode == 0
    assert done.stdout.strip().endswith(f"cloudq 0.1.0 (distribution {DISTRIBUTION})")
    hint = str(MissingExtraError("django", "django"))
    assert hint == "'django' is not installed; install it with: pip install 'cloudq-aws[django]'"


MEMORY_ENGINES = {"CLOUDQ_BROKER": "memory://", "CLOUDQ_BACKEND": "memory://"}


def cloudq_env(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "cloudq", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )


def test_revoke_revokes_an_id() -> None:
    done = cloudq_env(MEMORY_ENGINES, "revoke", "some-task-id", "--app", "tests.tasks:app")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "revoked some-task-id"


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["revoke", "x", "--app", "tests.tasks"], MEMORY_ENGINES, "must look like 'module:app'"),
        (["revoke", " ", "--app", "tests.tasks:app"], MEMORY_ENGINES, "a task id must not be empty"),
        (
            ["revoke", "x", "--app", "tests.tasks:app"],
            {"CLOUDQ_BROKER": "memory://", "CLOUDQ_BACKEND": "none"},
            "results turned off",
        ),
    ],
)
def test_revoke_bad_input_is_one_line_and_exit_2(args: list[str], env: dict[str, str], message: str) -> None:
    done = cloudq_env(env, *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_revoke_without_an_id_is_a_usage_error() -> None:
    done = cloudq_env(MEMORY_ENGINES, "revoke", "--app", "tests.tasks:app")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--visibility-timeout", "50000"], "past the broker's limit of 43200 s"),
        (["--wait", "25"], "Invalid value for '--wait'"),
        (["--grace", "-1"], "Invalid value for '--grace'"),
        (["--lanes", "weighted:4"], "lanes 'weighted:4': write strict or weighted:H:L"),
    ],
)
def test_bad_worker_options_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    done = cloudq("worker", "tests.tasks:app", *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
