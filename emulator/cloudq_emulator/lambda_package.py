"""The app's Lambda function, as the emulator deploys it: the code and its environment.

The code is the app's own package zipped (the top-level package of its ``module:app``); the
template (``cloudq.infra.cloudformation``) sets the handler ``cloudq.aws_lambda.handler``,
``CLOUDQ_APP``, the timeout and the mappings, and ``provision`` deploys it. ministack then
runs the trigger itself: it polls the queue, builds the SQS event, invokes the handler in a
warm local process with a context whose deadline is the function timeout, kills an
invocation past its timeout, and deletes what the partial batch response does not list.
"""

from __future__ import annotations

import importlib.util
import io
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

from cloudq.core.errors import ConfigurationError

#: Settings of the deploying environment the function gets too (the app reads them at import).
PASSED_PREFIXES = ("CLOUDQ_",)
SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache"}
#: Fixed zip entry times, so the same code makes the same zip (and no needless stack update).
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def package_app(app_reference: str) -> bytes:
    """A zip of the code behind ``module:app``: its top-level package (or lone module)."""
    module = app_reference.partition(":")[0]
    top = module.split(".")[0]
    spec = importlib.util.find_spec(top)
    if spec is None or spec.origin is None and not spec.submodule_search_locations:
        raise ConfigurationError(f"cannot find the code of {app_reference!r} to deploy")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if spec.submodule_search_locations:
            root = Path(list(spec.submodule_search_locations)[0])
            for path in sorted(root.rglob("*")):
                relative = path.relative_to(root.parent)
                if path.is_file() and not SKIPPED_PARTS & set(relative.parts) and path.suffix != ".pyc":
                    _add(archive, path, relative.as_posix())
        else:
            assert spec.origin is not None
            _add(archive, Path(spec.origin), Path(spec.origin).name)
    return buffer.getvalue()


def _add(archive: zipfile.ZipFile, path: Path, name: str) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, path.read_bytes())


def function_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The deploying environment's ``CLOUDQ_*`` settings, and ``extra`` (the template adds
    ``CLOUDQ_APP`` and the emulator's endpoint)."""
    env = {key: value for key, value in os.environ.items() if key.startswith(PASSED_PREFIXES)}
    env.pop("CLOUDQ_APP", None)
    env.update(extra or {})
    return env
