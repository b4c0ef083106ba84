"""Every code sample of README.md and docs/ runs, or says why it cannot (docs/contributing).

- ``python`` blocks run, the blocks of one page in order in one namespace, on the in-process
  engines. The namespace starts with ``CloudQ`` and ``app = CloudQ("shop")``. A block whose
  first line is ``# path/to/module.py`` is written to that file and imported; its names join
  the namespace. A worker thread consumes the queues of each memory app the page made.
- ``bash`` blocks: each ``cloudq …`` line parses against the click commands, each ``make …``
  line names a Makefile target; a block with neither must be marked not runnable.
- ``json`` / ``yaml`` blocks parse.
- ``<!-- not runnable: <reason> -->`` on the line before a block skips it, with its reason.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cloudq import CloudQ
from cloudq.app.result import AsyncResult, GroupResult

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
NOT_RUNNABLE = re.compile(r"^<!-- not runnable: (.+) -->$")
FENCE = re.compile(r"^```(\w*)\s*$")
MODULE_HEADER = re.compile(r"^# ([\w/]+\.py)\b")
#: Languages that are samples; ``text`` blocks are output and synopses.
SAMPLES = {"python", "bash", "json", "yaml"}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    code: str
    not_runnable: str | None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    lines = page.read_text().splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        end = index + 1
        while not lines[end].startswith("```"):
            end += 1
        marker = NOT_RUNNABLE.match(lines[index - 1]) if index else None
        code = "\n".join(lines[index + 1 : end]) + "\n"
        lang = opening.group(1) or "(none)"
        found.append(Block(page, index + 1, lang, code, marker.group(1) if marker else None))
        index = end + 1
    return found


ALL = [block for page in PAGES for block in blocks(page)]


def test_every_block_has_a_language_and_every_marker_a_block() -> None:
    unlabelled = [block.where for block in ALL if block.lang == "(none)"]
    assert not unlabelled, f"code blocks without a language (text for output): {unlabelled}"
    for page in PAGES:
        lines = page.read_text().splitlines()
        for number, line in enumerate(lines[:-1], 1):
            if NOT_RUNNABLE.match(line):
                assert FENCE.match(lines[number]), (
                    f"{page.relative_to(ROOT)}:{number}: marker not before a block"
                )


def test_the_counts_and_the_readme_quickstart(capsys: pytest.CaptureFixture[str]) -> None:
    samples = [block for block in ALL if block.lang in SAMPLES]
    run = [block for block in samples if block.not_runnable is None]
    by_lang = {lang: sum(1 for b in run if b.lang == lang) for lang in sorted(SAMPLES)}
    skipped = [block for block in samples if block.not_runnable is not None]
    with capsys.disabled():
        print(
            f"\ndocs samples: {len(samples)} in {len(PAGES)} pages; run or checked {len(run)} "
            f"({', '.join(f'{lang} {n}' for lang, n in by_lang.items())}); not runnable {len(skipped)}"
        )
    assert not [b.where for b in samples if b.lang not in SAMPLES]
    # The README's quickstart is among the python samples that run.
    readme = [b for b in run if b.page.name == "README.md" and b.lang == "python"]
    assert {MODULE_HEADER.match(b.code).group(1) for b in readme if MODULE_HEADER.match(b.code)} >= {
        "shop/tasks.py",
        "enqueue.py",
    }


# -- python ------------------------------------------------------------------------------------


class PageWorkers:
    """A worker thread per memory app of the page, over its queues (restarted when they grow)."""

    def __init__(self) -> None:
        self.running: dict[int, tuple[Any, threading.Thread, frozenset[str]]] = {}
        self.died: list[str] = []

    def cover(self, namespace: dict[str, Any]) -> None:
        from cloudq.worker import Worker

        for app in [value for value in namespace.values() if isinstance(value, CloudQ)]:
            if not app.settings.broker.startswith("memory://"):
                continue
            queues = frozenset(app.queue_names())
            current = self.running.get(id(app))
            if current is not None and current[2] == queues:
                continue
            if current is not None:
                self._stop(current)
            worker = Worker(app, sorted(queues), concurrency=4, wait_seconds=0.05, grace=2)
            thread = threading.Thread(target=self._run, args=(worker,), daemon=True)
            thread.start()
            self.running[id(app)] = (worker, thread, queues)

    def _run(self, worker: Any) -> None:
        try:
            worker.run()
        except BaseException as exc:  # said by the sample's failure, not lost in a thread
            self.died.append(f"{type(exc).__name__}: {exc}")
            raise

    def check(self) -> None:
        """A sample's worker that died is the sample's failure."""
        assert not self.died, f"a docs sample's worker died: {self.died}"

    def _stop(self, entry: tuple[Any, threading.Thread, frozenset[str]]) -> None:
        worker, thread, _ = entry
        worker.stop()
        thread.join(timeout=10)
        assert not thread.is_alive(), "a docs sample's worker did not stop"

    def stop(self) -> None:
        for entry in self.running.values():
            self._stop(entry)


@pytest.fixture
def memory_engines(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """The in-process engines for every app a sample makes, AWS pointed at a closed port (a
    sample that reached for AWS fails instead of leaving this machine), and a folder on
    ``sys.path`` for the page's modules."""
    import os

    for name in [name for name in os.environ if name.startswith("CLOUDQ_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CLOUDQ_BROKER", "memory://")
    monkeypatch.setenv("CLOUDQ_BACKEND", "memory://")
    monkeypatch.setenv("CLOUDQ_PAYLOAD_STORE", "memory://")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    # A sample's .get() without a timeout waits at most SAMPLE_GET_SECONDS here: a sample whose
    # task never runs fails instead of holding the suite forever (seen once, in CI's
    # shifted-clock run).
    for cls in (AsyncResult, GroupResult):
        monkeypatch.setattr(cls, "get", _bounded(cls.get))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if str(getattr(sys.modules[name], "__file__", "") or "").startswith(str(tmp_path)):
            del sys.modules[name]


SAMPLE_GET_SECONDS = 60.0


def _bounded(get: Any) -> Any:
    def bounded(self: Any, timeout: float | None = None, interval: float = 0.05) -> Any:
        return get(self, SAMPLE_GET_SECONDS if timeout is None else timeout, interval)

    return bounded


PYTHON_PAGES = sorted({b.page for b in ALL if b.lang == "python" and b.not_runnable is None})


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=[str(p.relative_to(ROOT)) for p in PYTHON_PAGES])
def test_the_python_samples_of_a_page_run(page: Path, memory_engines: Path) -> None:
    namespace: dict[str, Any] = {"__name__": "docs_sample", "CloudQ": CloudQ, "app": CloudQ("shop")}
    workers = PageWorkers()
    try:
        for block in blocks(page):
            if block.lang != "python" or block.not_runnable is not None:
                continue
            workers.cover(namespace)
            try:
                run_block(block, namespace, memory_engines)
            finally:
                workers.check()
    finally:
        workers.stop()


def run_block(block: Block, namespace: dict[str, Any], folder: Path) -> None:
    header = MODULE_HEADER.match(block.code)
    try:
        if header is None:
            exec(compile(block.code, block.where, "exec"), namespace)
            return
        path = folder / header.group(1)
        path.parent.mkdir(parents=True, exist_ok=True)
        for package in path.relative_to(folder).parents:
            if str(package) != "." and not (folder / package / "__init__.py").exists():
                (folder / package / "__init__.py").write_text("")
        path.write_text(block.code)
        module = importlib.import_module(".".join(path.relative_to(folder).with_suffix("").parts))
        namespace.update({k: v for k, v in vars(module).items() if not k.startswith("_")})
    except Exception as exc:
        raise AssertionError(f"{block.where}: the sample raised {type(exc).__name__}: {exc}") from exc


# -- shell, json, yaml -------------------------------------------------------------------------


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return {m.group(1) for m in re.finditer(r"^([\w.-]+)\s*:(?!=)", text, flags=re.MULTILINE)}


def parse_cloudq(args: list[str]) -> None:
    """Parse ``cloudq <args>`` as click would, down to the last command, without running it."""
    import click

    from cloudq.cli import main

    ctx = main.make_context("cloudq", list(args), resilient_parsing=False)
    command: click.Command = main
    while isinstance(command, click.Group) and unparsed(ctx):
        name, sub, rest = command.resolve_command(ctx, unparsed(ctx))
        assert sub is not None and name is not None
        ctx = sub.make_context(name, rest, parent=ctx)
        command = sub


def unparsed(ctx: Any) -> list[str]:
    """What a group left for its command (click 8.2 keeps the command's name apart)."""
    protected = ctx.__dict__.get("_protected_args", ctx.__dict__.get("protected_args", []))
    return [*protected, *ctx.args]


def shell_lines(code: str) -> Iterator[list[str]]:
    for line in code.splitlines():
        words = shlex.split(line, comments=True)
        while words and words[-1] in ("&", "&&"):
            words.pop()
        if words:
            yield words


SHELL = [b for b in ALL if b.lang == "bash" and b.not_runnable is None]


@pytest.mark.parametrize("block", SHELL, ids=[b.where for b in SHELL])
def test_a_shell_sample_names_real_commands(block: Block) -> None:
    checked = 0
    for words in shell_lines(block.code):
        if words[0] == "cloudq":
            try:
                parse_cloudq(words[1:])
            except Exception as exc:  # click's usage errors, and what a bad value raises
                raise AssertionError(f"{block.where}: {shlex.join(words)}: {exc}") from exc
            checked += 1
        elif words[0] == "make":
            assert set(words[1:]) <= makefile_targets(), f"{block.where}: {shlex.join(words)}"
            checked += 1
    assert checked, f"{block.where}: nothing to check; mark it <!-- not runnable: <reason> -->"


DATA = [b for b in ALL if b.lang in ("json", "yaml") and b.not_runnable is None]


def test_the_data_samples_parse() -> None:
    import yaml

    for block in DATA:
        try:
            json.loads(block.code) if block.lang == "json" else yaml.safe_load(block.code)
        except (ValueError, yaml.YAMLError) as exc:
            raise AssertionError(f"{block.where}: {exc}") from exc


def test_the_readme_links_resolve() -> None:
    """The README is not part of the site (the strict build checks the site's links): its
    relative links must name files of the repository, and their anchors headings there."""
    readme = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(([^)#:]+)(?:#([\w-]+))?\)", readme):
        path, anchor = ROOT / target[0], target[1]
        assert path.exists(), f"README.md links to {target[0]}, which does not exist"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", path.read_text(), flags=re.MULTILINE)
            slugs = {re.sub(r"[^\w\s-]", "", h).strip().lower().replace(" ", "-") for h in headings}
            assert anchor in slugs, f"README.md links to {target[0]}#{anchor}: no such heading"
