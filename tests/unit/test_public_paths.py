"""Every import path the docs document still imports, whatever moves inside the package
(the layout follows the layers; these are the paths users and deployed templates name)."""

from __future__ import annotations

import importlib

import pytest

#: (module, attribute): what the docs tell users to import or to name.
DOCUMENTED = [
    ("cloudq", "CloudQ"),
    ("cloudq", "chord"),
    ("cloudq", "group"),
    ("cloudq", "ArgumentError"),
    ("cloudq", "TaskError"),
    ("cloudq", "load_app"),
    ("cloudq.options", "SendOptions"),
    ("cloudq.options", "WorkerOptions"),
    ("cloudq.testing", "drain"),
    ("cloudq.testing", "sqs_event"),
    ("cloudq.testing", "FakeLambdaContext"),
    ("cloudq.tracing", "trace_context"),
    ("cloudq.worker", "Worker"),
    ("cloudq.config", "SettingsSource"),
    ("cloudq.clock", "ManualClock"),
    ("cloudq.payloads", "PayloadStore"),
    ("cloudq.infra", "app_resources"),
    ("cloudq.infra.model", "check_mapping"),
    ("cloudq.aws_lambda", "handler"),
    ("cloudq.contrib.django", "DjangoCloudQ"),
    ("cloudq.contrib.django.testing", "use_memory_engines"),
    ("cloudq.contrib.django.testing", "DiscoverRunner"),
]


@pytest.mark.parametrize(("module", "attribute"), DOCUMENTED, ids=[f"{m}.{a}" for m, a in DOCUMENTED])
def test_a_documented_import_path_imports(module: str, attribute: str) -> None:
    assert hasattr(importlib.import_module(module), attribute), f"{module}.{attribute} is gone"
