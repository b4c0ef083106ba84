"""How cloudq's modules import each other: what an engine pulls in (issue 24)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "cloudq"
#: The one documented up-call: ``CloudQ.lambda_handler`` runs the Lambda adapter.
ALLOWED_UP_CALLS = {("cloudq.app.base", "cloudq.aws_lambda")}


def _loaded_after(statement: str, modules: tuple[str, ...]) -> list[str]:
    """The ``modules`` a fresh interpreter has loaded after ``statement``."""
    code = f"import sys\n{statement}\nprint(','.join(m for m in {modules!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [name for name in done.stdout.strip().split(",") if name]


def test_the_memory_and_redis_engines_keep_sqs_limits_without_the_sqs_engine() -> None:
    # Given the two engines that keep SQS's limits
    statement = "import cloudq.transports.memory, cloudq.transports.redis"
    # When a fresh interpreter imports them
    loaded = _loaded_after(statement, ("cloudq.transports.sqs",))
    # Then the SQS engine (and the botocore it needs) stays unloaded
    assert loaded == []


def test_the_redis_result_backend_does_not_load_the_redis_broker() -> None:
    # Given an app whose results are in Redis and whose broker is not
    statement = "import cloudq.backends.redis"
    # When a fresh interpreter imports the backend
    loaded = _loaded_after(statement, ("cloudq.transports.redis",))
    # Then the Redis broker stays unloaded (the two share only the scripts' loader)
    assert loaded == []


def test_rendering_a_lambda_deployment_does_not_load_the_lambda_handler() -> None:
    # Given an app with a Lambda queue, whose function the deploy model checks against its tasks
    statement = (
        "from cloudq import CloudQ\n"
        "from cloudq.infra import app_resources\n"
        "app = CloudQ('shop', broker='memory://', backend=None, lambda_queues=('default',))\n"
        "app.task(name='ping', timeout=5)(print)\n"
        "resources = app_resources(app, 'shop.tasks:app')\n"
        "assert resources.function is not None"
    )
    # When a fresh interpreter builds its AWS resources
    loaded = _loaded_after(statement, ("cloudq.aws_lambda", "cloudq.runtime.executor"))
    # Then neither the handler nor the executor it runs is loaded (deploying is not running)
    assert loaded == []


def _module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _imported(tree: ast.AST, modules: dict[str, Path]) -> Iterator[str]:
    """Every cloudq module ``tree`` imports at run time: in functions too, not under
    ``if TYPE_CHECKING:``. ``from package import name`` counts the module ``package.name``
    when there is one, else the package."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                yield full if full in modules else node.module
        stack.extend(ast.iter_child_nodes(node))


def _a_loop(graph: dict[str, set[str]]) -> list[str]:
    """One import loop of ``graph``, or ``[]``."""
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str]:
        for target in sorted(graph[name]):
            if target in path:
                return [*path[path.index(target) :], target]
            if target not in done:
                found = visit(target, [*path, target])
                if found:
                    return found
        done.add(name)
        return []

    for start in sorted(graph):
        loop = visit(start, [start]) if start not in done else []
        if loop:
            return loop
    return []


def test_cloudq_modules_import_each_other_without_loops() -> None:
    # Given every import between cloudq's modules, lazy ones included, bar the documented up-call
    modules = _module_names()
    graph = {
        name: {
            target
            for target in _imported(ast.parse(path.read_text()), modules)
            if target in modules and target != name and (name, target) not in ALLOWED_UP_CALLS
        }
        for name, path in modules.items()
    }
    # When looking for a module that, through others, imports itself
    loop = _a_loop(graph)
    # Then there is none
    assert loop == [], " -> ".join(loop)
