"""A lock for the tests that build from this checkout: pip builds a project in its own tree
(``build/``, ``*.egg-info``) and npm installs Serverless into ``.cache/``, so two processes of
`make test` (pytest-xdist) building at once would collide."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def checkout_lock() -> Iterator[None]:
    """Held while a test builds from the checkout; another process waits for it."""
    path = ROOT / ".cache" / "checkout.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
