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
# `--dist loadgroup` keeps a group on one process. Every module is its own group, so its
# module-scoped fixtures (a deployed stack, a worker) are made once, as without xdist. The
# modules that build from the checkout share one group: pip builds the project in its tree
# (build/, *.egg-info) and npm installs serverless into .cache/, and two at once would collide.
# Those long modules go first, so no process is left with one of them at the end.
SHARED_CHECKOUT = (
    "tests/e2e/test_lambda_package_e2e.py",
    "tests/e2e/test_install_e2e.py",
    "tests/deploy/test_committed_templates.py",
    "tests/deploy/test_cfn_lint.py",
)
FIRST = (*SHARED_CHECKOUT, "tests/e2e/test_imports_e2e.py", "tests/e2e/test_schedule_e2e.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def module(item: pytest.Item) -> str:
        return item.nodeid.split("::", 1)[0]

    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            group = "checkout" if module(item) in SHARED_CHECKOUT else module(item)
            item.add_marker(pytest.mark.xdist_group(group))
    rank = {path: index for index, path in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(module(item), len(FIRST)))
