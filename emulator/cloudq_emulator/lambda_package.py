"""The app's Lambda function, as the emulator deploys it: the code and its environment.

The code is the zip ``cloudq infra package`` builds (``cloudq.infra.package``), for this
machine's Python (the emulator runs the function with it): on Linux x86_64 with Lambda's
Python that is the very zip AWS would run. The template (``cloudq.infra.cloudformation``)
sets the handler ``cloudq.aws_lambda.handler``, ``CLOUDQ_APP``, the timeout and the mappings,
and ``provision`` deploys it. ministack then runs the trigger itself: it polls the queue,
builds the SQS event, invokes the handler in a warm local process with a context whose
deadline is the function timeout, kills an invocation past its timeout, and deletes what the
partial batch response does not list.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from cloudq.infra.package import LAMBDA_PLATFORM, build_package, source_fingerprint

#: Settings of the deploying environment the function gets too (the app reads them at import).
PASSED_PREFIXES = ("CLOUDQ_",)
#: Zips built in this process, by their sources' fingerprint: a test session deploys the same
#: app many times, and builds it once.
_built: dict[tuple[str, ...], bytes] = {}


def package_app(app_reference: str) -> bytes:
    """The zip of ``module:app`` for this machine (``cloudq infra package``'s build)."""
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    on_lambda_platform = sys.platform == "linux" and platform.machine() == "x86_64"
    target = LAMBDA_PLATFORM if on_lambda_platform else None
    key = (app_reference, here, str(target), *source_fingerprint(app_reference))
    if key not in _built:
        with tempfile.TemporaryDirectory(prefix="cloudq-emulator-") as folder:
            path = Path(folder) / "function.zip"
            build_package(app_reference, path, python=here, platform=target)
            _built[key] = path.read_bytes()
    return _built[key]


def function_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The deploying environment's ``CLOUDQ_*`` settings, and ``extra`` (the template adds
    ``CLOUDQ_APP`` and the emulator's endpoint)."""
    env = {key: value for key, value in os.environ.items() if key.startswith(PASSED_PREFIXES)}
    env.pop("CLOUDQ_APP", None)
    env.update(extra or {})
    return env
