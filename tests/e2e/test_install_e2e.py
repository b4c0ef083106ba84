"""Installing cloudq as a user does: build both wheels, install them with the README's command
into a fresh virtual environment, and run the README's quickstart there.

Everything comes from 127.0.0.1 or disk: dependencies from the wheelhouse that `make test`'s
set-up fills (``--no-index --find-links``), the emulator from the fresh environment itself.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudq.core.distribution import DISTRIBUTION
from cloudq_emulator.server import free_port
from tests.checkout import checkout_lock
from tests.processes import wait_until

ROOT = Path(__file__).resolve().parents[2]
WHEELHOUSE = ROOT / ".wheelhouse"
README = (ROOT / "README.md").read_text()


def run(*command: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{command}: {done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def readme_install_command() -> list[str]:
    """The README's wheel install line: ``pip install --find-links dist '<dist>[extras]'``."""
    [line] = re.findall(r"^pip install --find-links dist '([^']+)'$", README, flags=re.MULTILINE)
    return ["install", "--find-links", "dist", line]


def readme_files() -> dict[str, str]:
    """The quickstart's Python files: code blocks whose first line is ``# <path>.py``."""
    blocks = re.findall(r"```python\n# (\S+\.py)[^\n]*\n(.*?)```", README, flags=re.DOTALL)
    return {path: code for path, code in blocks}


@pytest.fixture
def fresh_venv(tmp_path: Path) -> Iterator[Path]:
    if not (WHEELHOUSE / ".filled").exists():
        pytest.fail(f"{WHEELHOUSE} is not filled: run `make test` (its set-up step fills it from PyPI)")
    yield tmp_path / "venv"


def test_the_wheels_install_in_a_fresh_venv_and_the_readme_quickstart_runs(
    fresh_venv: Path, tmp_path: Path
) -> None:
    # Given both wheels, built from this checkout (the build backend from the wheelhouse)
    dist = tmp_path / "dist"
    offline = ["--no-index", "--find-links", str(WHEELHOUSE)]
    with checkout_lock():
        run(sys.executable, "-m", "pip", "wheel", "--no-deps", *offline, "-w", dist, ROOT, ROOT / "emulator")
    assert {path.name.split("-")[0] for path in dist.glob("*.whl")} == {"cloudq_aws", "cloudq_aws_emulator"}
    # When they are installed into a fresh venv with the README's command
    run(sys.executable, "-m", "venv", fresh_venv)
    bin_dir = fresh_venv / "bin"
    run(bin_dir / "python", "-m", "pip", "--quiet", *readme_install_command(), *offline, cwd=tmp_path)
    # Then cloudq is imported from that venv (not editable, not this checkout)
    project = tmp_path / "project"
    project.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}")
    code = "import cloudq, cloudq_emulator; print(cloudq.__file__)"
    where = run(bin_dir / "python", "-c", code, cwd=project, env=env)
    assert Path(where.strip()).is_relative_to(fresh_venv / "lib")
    assert "include-system-site-packages = false" in (fresh_venv / "pyvenv.cfg").read_text()
    assert DISTRIBUTION in run(bin_dir / "cloudq", "--version", cwd=project, env=env)
    # and the README's quickstart runs there
    for path, code in readme_files().items():
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(code)
    assert {"shop/tasks.py", "enqueue.py"} <= set(readme_files())
    output = run_quickstart(project, env, free_port())
    assert "{'event_id': 7, 'participants': 23}" in output


def run_quickstart(project: Path, env: dict[str, str], port: int) -> str:
    """The README's commands, on ``port`` instead of 4566: emulator up, a worker, the script."""
    up_log = (project / "up.log").open("w")
    up = subprocess.Popen(
        ["cloudq", "emulator", "up", "--app", "shop.tasks:app", "--port", str(port)],
        cwd=project,
        env=env,
        stdout=up_log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    worker: subprocess.Popen[str] | None = None
    try:
        assert wait_until(lambda: "Ctrl-C to stop" in (project / "up.log").read_text(), 60), (
            project / "up.log"
        ).read_text()
        aws = {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        worker = subprocess.Popen(
            ["cloudq", "worker", "shop.tasks:app", "-Q", "emails,default", "-c", "16"],
            cwd=project,
            env={**env, **aws, "CLOUDQ_WAIT_SECONDS": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return run("python", "enqueue.py", cwd=project, env={**env, **aws})
    finally:
        for process, stop in ((worker, signal.SIGTERM), (up, signal.SIGINT)):
            if process is not None:
                process.send_signal(stop)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
