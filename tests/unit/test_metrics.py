"""Per-task EMF metrics: valid against the Embedded Metric Format's schema, values that follow
the outcomes, and nothing at all when metrics are off."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from cloudq.testing import drain
from tests.tasks import make_app

#: The Embedded Metric Format's JSON schema, as the specification gives it
#: (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
EMF_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "title": "Root Node",
    "required": ["_aws"],
    "properties": {
        "_aws": {
            "$id": "#/properties/_aws",
            "type": "object",
            "title": "Metadata",
            "required": ["Timestamp", "CloudWatchMetrics"],
            "properties": {
                "Timestamp": {
                    "$id": "#/properties/_aws/properties/Timestamp",
                    "type": "integer",
                    "minimum": 0,
                },
                "LogGroupName": {"type": "string", "minLength": 1},
                "CloudWatchMetrics": {
                    "$id": "#/properties/_aws/properties/CloudWatchMetrics",
                    "type": "array",
                    "title": "MetricDirectives",
                    "items": {
                        "type": "object",
                        "title": "MetricDirective",
                        "required": ["Namespace", "Dimensions", "Metrics"],
                        "properties": {
                            "Namespace": {"type": "string", "minLength": 1, "maxLength": 1024},
                            "Dimensions": {
                                "type": "array",
                                "title": "DimensionSets",
                                "minItems": 0,
                                "items": {
                                    "type": "array",
                                    "title": "DimensionSet",
                                    "minItems": 0,
                                    "maxItems": 30,
                                    "items": {"type": "string", "minLength": 1, "maxLength": 250},
                                },
                            },
                            "Metrics": {
                                "type": "array",
                                "title": "MetricDefinitions",
                                "maxItems": 100,
                                "items": {
                                    "type": "object",
                                    "title": "MetricDefinition",
                                    "required": ["Name"],
                                    "properties": {
                                        "Name": {"type": "string", "minLength": 1, "maxLength": 1024},
                                        "Unit": {
                                            "type": "string",
                                            "enum": [
                                                "Seconds",
                                                "Microseconds",
                                                "Milliseconds",
                                                "Bytes",
                                                "Kilobytes",
                                                "Megabytes",
                                                "Gigabytes",
                                                "Terabytes",
                                                "Bits",
                                                "Kilobits",
                                                "Megabits",
                                                "Gigabits",
                                                "Terabits",
                                                "Percent",
                                                "Count",
                                                "Bytes/Second",
                                                "Kilobytes/Second",
                                                "Megabytes/Second",
                                                "Gigabytes/Second",
                                                "Terabytes/Second",
                                                "Bits/Second",
                                                "Kilobits/Second",
                                                "Megabits/Second",
                                                "Gigabits/Second",
                                                "Terabits/Second",
                                                "Count/Second",
                                                "None",
                                            ],
                                        },
                                        "StorageResolution": {"type": "integer", "enum": [1, 60]},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        }
    },
}


def emf_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"_aws"')]


def check_targets(document: dict[str, Any]) -> None:
    """What the schema cannot say: every dimension and metric named has a member in the root
    (a dimension a string, a metric a number)."""
    for directive in document["_aws"]["CloudWatchMetrics"]:
        for dimension_set in directive["Dimensions"]:
            assert all(isinstance(document[name], str) for name in dimension_set)
        for metric in directive["Metrics"]:
            assert isinstance(document[metric["Name"]], (int, float))


def test_emf_lines_validate_and_follow_the_outcomes(capsys: pytest.CaptureFixture[str]) -> None:
    # Given an app with metrics on
    app = make_app("emf", broker="memory://", backend="memory://", metrics=True)
    # When one task succeeds and one fails three times (max_retries=2)
    app.tasks["add"].delay(1, 2)
    app.tasks["always_fails"].delay("emf")
    drain(app, raise_failures=False)
    documents = emf_lines(capsys.readouterr().out)
    # Then each run wrote one line that the EMF schema accepts
    assert len(documents) == 4
    for document in documents:
        jsonschema.validate(document, EMF_SCHEMA)
        check_targets(document)
        assert document["App"] == "emf" and document["Queue"] == "default"
        assert document["TaskDuration"] >= 0 and document["QueueWaitTime"] >= 0
    # and the counts follow the outcomes
    by_task: dict[str, list[tuple[int, int, int]]] = {}
    for document in documents:
        counts = (document["TaskSucceeded"], document["TaskRetried"], document["TaskFailed"])
        by_task.setdefault(document["Task"], []).append(counts)
    assert by_task == {"add": [(1, 0, 0)], "always_fails": [(0, 1, 0), (0, 1, 0), (0, 0, 1)]}


def test_metrics_off_write_no_line(capsys: pytest.CaptureFixture[str]) -> None:
    app = make_app("quiet", broker="memory://", backend="memory://")
    assert app.settings.metrics is False
    app.tasks["add"].delay(1, 2)
    app.tasks["always_fails"].delay("quiet")
    drain(app, raise_failures=False)
    assert capsys.readouterr().out == ""


def test_the_setting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDQ_METRICS", "1")
    assert make_app("env", broker="memory://", backend="memory://").settings.metrics is True


def test_the_lambda_handler_writes_its_lines_before_the_invocation_ends(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given an app with metrics on, and an SQS event of two records
    from cloudq.testing import FakeLambdaContext, sqs_event

    app = make_app("emflambda", broker="memory://", backend="memory://", metrics=True)
    app.tasks["add"].delay(1, 2)
    app.tasks["add"].delay(2, 2)
    # When the handler returns
    response = app.lambda_handler(sqs_event(app), FakeLambdaContext())
    # Then both lines are out already (the environment may be frozen next)
    assert response == {"batchItemFailures": []}
    documents = emf_lines(capsys.readouterr().out)
    assert [(d["Task"], d["TaskSucceeded"]) for d in documents] == [("add", 1), ("add", 1)]
    for document in documents:
        jsonschema.validate(document, EMF_SCHEMA)
