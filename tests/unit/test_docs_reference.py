"""The generated references of the docs site (docs/_hooks/reference.py): every setting, every
command and every option has documentation text, and the pages hold what the code defines."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from cloudq.core.config import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_reference", ROOT / "docs" / "_hooks" / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_setting_has_documentation_text(reference: ModuleType) -> None:
    docs = reference.settings_docs()
    assert set(docs) == set(Settings.model_fields)
    missing = sorted(name for name, text in docs.items() if not text.strip())
    assert not missing, f"settings without a #: comment in cloudq/core/config.py: {missing}"


def test_the_settings_table_has_a_row_per_setting_with_its_variable(reference: ModuleType) -> None:
    table = reference.settings_markdown()
    for name in Settings.model_fields:
        assert f"| `{name}` | `CLOUDQ_{name.upper()}` |" in table


def test_every_command_and_option_has_documentation_text(reference: ModuleType) -> None:
    missing = []
    paths = []
    for path, command, _ in reference.commands():
        paths.append(path)
        if not (command.help or "").strip():
            missing.append(path)
        missing += [f"{path} {option.opts[0]}" for option in reference.options_of(command) if not option.help]
    assert not missing, f"commands or options without help text: {missing}"
    # the walk reaches every command group, the emulator's (another distribution) included
    assert {"cloudq worker", "cloudq dlq replay", "cloudq infra render", "cloudq emulator up"} <= set(paths)


def test_the_cli_page_shows_each_command_and_option(reference: ModuleType) -> None:
    page = reference.cli_markdown()
    for path, command, _ in reference.commands():
        assert f"`{path}`" in page
        for option in reference.options_of(command):
            assert f"`{option.opts[0]}`" in page


def test_the_pages_hold_the_markers_the_hook_replaces(reference: ModuleType) -> None:
    assert reference.SETTINGS_MARKER in (ROOT / "docs" / "reference" / "settings.md").read_text()
    assert reference.CLI_MARKER in (ROOT / "docs" / "reference" / "cli.md").read_text()


def test_every_public_name_is_on_the_api_page_with_a_docstring() -> None:
    import cloudq

    page = (ROOT / "docs" / "reference" / "api.md").read_text()
    for name in cloudq.__all__:
        obj = getattr(cloudq, name)
        own = obj.__dict__.get("__doc__") if isinstance(obj, type) else obj.__doc__
        assert (own or "").strip(), f"cloudq.{name} has no docstring"
        module = obj.__module__
        on_page = f"::: {module}.{name}\n" in page or f"::: {module}\n" in page
        assert on_page, f"cloudq.{name} is not on api.md"
