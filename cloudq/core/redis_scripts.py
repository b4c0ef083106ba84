"""Lua scripts shipped as ``.lua`` files beside the Redis engines that run them (the broker's
and the result backend's), registered on a client. Its own module, so that neither engine
imports the other for it."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import Any


def load_scripts(
    client: Any, package: str, names: Sequence[str], stem: str, prelude: str = ""
) -> dict[str, Any]:
    """Register the Lua scripts ``<stem><name>.lua`` of ``package``, each after ``prelude``."""
    folder = resources.files(package)
    return {
        name: client.register_script(prelude + (folder / f"{stem}{name}.lua").read_text()) for name in names
    }
