from __future__ import annotations

import pytest

from cloudq import CloudQ
from tests.tasks import make_app


@pytest.fixture
def app() -> CloudQ:
    """A fresh app on the in-process engines (memory broker and results)."""
    return make_app("unit", broker="memory://", backend="memory://")


# -- running the suite on several processes (pytest-xdist, `make test` runs -n 2) ----------------
#
# `--dist loadfile` keeps a module on one process, so its module-scoped fixtures (a deployed
# stack, a worker) are made once, as without xdist. (`loadgroup` cannot group under pytest 9:
# xdist 3.8 renames items through `_nodeid`, which pytest 9 no longer reads.) The modules that
# build from the checkout hold `tests.checkout.checkout_lock` while they do. The longest
# modules go first, so no process is left with one of them at the end.
FIRST = (
    "tests/e2e/test_install_e2e.py",
    "tests/e2e/test_lambda_package_e2e.py",
    "tests/e2e/test_schedule_e2e.py",
    "tests/e2e/test_rolling_restart_e2e.py",
    "tests/e2e/test_imports_e2e.py",
    "tests/deploy/test_committed_templates.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: index for index, path in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(FIRST)))
