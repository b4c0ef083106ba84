"""The layer table of DESIGN.md, executable: imports point downward only.

Every module of ``cloudq`` is read with ``ast`` (imports inside functions counted, those under
``if TYPE_CHECKING:`` skipped: they are types only). An import of a module of a higher layer
fails, but for the one documented up-call: ``CloudQ.lambda_handler`` (``cloudq.app.base``)
calls the Lambda adapter, so that a deployed template can name ``app.lambda_handler``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "cloudq"

#: Layers, lowest first; a module belongs to the layer of its longest matching prefix.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # the public faces that are values or thin paths to the core
    ("core", ("cloudq.core", "cloudq.options", "cloudq.tracing", "cloudq.config", "cloudq.clock")),
    ("engines", ("cloudq.transports", "cloudq.backends", "cloudq.payloads")),
    ("app", ("cloudq.app",)),
    ("runtime", ("cloudq.runtime", "cloudq.worker")),
    ("lambda", ("cloudq.aws_lambda",)),
    ("infra", ("cloudq.infra",)),
    ("ops", ("cloudq.ops",)),
    ("dashboard", ("cloudq.dashboard",)),
    ("faces", ("cloudq.cli", "cloudq.testing", "cloudq.__main__", "cloudq")),
    ("contrib", ("cloudq.contrib",)),
]
#: The one documented up-call (importer → imported).
ALLOWED_UP_CALLS = {("cloudq.app.base", "cloudq.aws_lambda")}


def layer_of(module: str) -> int:
    best, rank = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            nested = module.startswith(prefix + ".") and prefix != "cloudq"  # the package itself: exact
            if (module == prefix or nested) and len(prefix) > best:
                best, rank = len(prefix), index
    assert rank >= 0, f"{module} is in no layer: add it to LAYERS"
    return rank


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


class _Imports(ast.NodeVisitor):
    """The cloudq modules a module imports, outside ``if TYPE_CHECKING:`` blocks."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.found: set[str] = set()

    def visit_If(self, node: ast.If) -> None:  # noqa: N802 - ast's name
        test = node.test
        if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:  # noqa: N802
        self.found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "cloudq")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:  # noqa: N802
        base = node.module or ""
        if node.level:
            parent = self.package.split(".")[: len(self.package.split(".")) - node.level + 1]
            base = ".".join([*parent, base] if base else parent)
        if base.split(".")[0] != "cloudq":
            return
        for alias in node.names:
            candidate = f"{base}.{alias.name}"
            self.found.add(candidate if _is_module(candidate) else base)


def _is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").exists() or (PACKAGE / relative / "__init__.py").exists()


def imports_of(path: Path) -> set[str]:
    visitor = _Imports(module_name(path), path.name == "__init__.py")
    visitor.visit(ast.parse(path.read_text(), str(path)))
    return visitor.found


def up_calls() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = module_name(path)
        for imported in sorted(imports_of(path)):
            if layer_of(imported) > layer_of(importer) and (importer, imported) not in ALLOWED_UP_CALLS:
                above, below = LAYERS[layer_of(imported)][0], LAYERS[layer_of(importer)][0]
                found.append(f"{importer} ({below}) imports {imported} ({above})")
    return found


def test_imports_point_downward_only() -> None:
    assert up_calls() == []


def test_the_walk_sees_an_up_call_and_skips_type_checking_blocks(tmp_path: Path) -> None:
    # Given a core module importing the runtime, and a TYPE_CHECKING import of the app
    source = (
        "from typing import TYPE_CHECKING\n"
        "from cloudq.runtime import worker\n"
        "import cloudq.ops.status\n"
        "if TYPE_CHECKING:\n"
        "    from cloudq.app.base import CloudQ\n"
        "def later():\n"
        "    from cloudq.cli import main\n"
    )
    visitor = _Imports("cloudq.core.example", is_package=False)
    visitor.visit(ast.parse(source))
    # Then the runtime, ops and cli imports are seen (the lazy one too), the type-only one is not
    assert visitor.found == {"cloudq.runtime.worker", "cloudq.ops.status", "cloudq.cli"}
    assert all(layer_of(name) > layer_of("cloudq.core.example") for name in visitor.found)


def test_every_module_has_a_layer() -> None:
    for path in PACKAGE.rglob("*.py"):
        layer_of(module_name(path))
