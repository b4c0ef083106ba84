from __future__ import annotations

import pytest

from cloudq import CloudQ
from tests.tasks import make_app


@pytest.fixture
def app() -> CloudQ:
    """A fresh app on the in-process engines (memory broker and results)."""
    return make_app("unit", broker="memory://", backend="memory://")
