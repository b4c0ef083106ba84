"""The template's CloudWatch dashboard names what it shows: the app's queues and their
dead-letter queues, its Lambda function and the EMF namespace (its SEARCH expressions)."""

from __future__ import annotations

import json
from typing import Any

import yaml

from cloudq.infra import app_resources
from cloudq.infra.render import render
from cloudq.runtime.metrics import NAMESPACE
from tests.tasks import make_app


def dashboard_widgets(app_name: str, **settings: Any) -> list[dict[str, Any]]:
    app = make_app(app_name, **settings)
    template = yaml.safe_load(render(app_resources(app, "tests.tasks:app"), "cloudformation"))
    [dashboard] = [r for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    widgets: list[dict[str, Any]] = json.loads(body)["widgets"]
    return widgets


def named(widgets: list[dict[str, Any]]) -> set[str]:
    """Every string a widget's metrics hold (names, dimension values, expressions)."""
    found: set[str] = set()
    for widget in widgets:
        for metric in widget["properties"]["metrics"]:
            for part in metric:
                found.add(part["expression"] if isinstance(part, dict) else str(part))
    return found


def test_the_widgets_name_the_queues_the_function_and_the_emf_namespace() -> None:
    widgets = dashboard_widgets("dash", lambda_queues=("default",))
    names = named(widgets)
    resources = app_resources(make_app("dash", lambda_queues=("default",)), "tests.tasks:app")
    assert resources.function is not None
    for queue in resources.queues:
        assert {queue.name, queue.dead_letter_name} <= names, queue.name
    assert {"dash-default", "dash-orders.fifo"} <= names
    assert resources.function.function_name in names
    assert any("AWS/Lambda" in widget["properties"]["metrics"][0] for widget in widgets)
    searches = [name for name in names if name.startswith("SEARCH(")]
    assert searches and all(f"{{{NAMESPACE}," in search and 'App="dash"' in search for search in searches)
    assert all(w["properties"]["region"] == "${AWS::Region}" for w in widgets)


def test_without_a_lambda_worker_there_is_no_lambda_widget() -> None:
    widgets = dashboard_widgets("plain")
    assert not any("AWS/Lambda" in str(widget["properties"]["metrics"]) for widget in widgets)
    assert "plain-default" in named(widgets)
