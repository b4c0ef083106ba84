"""``cloudq infra render``: the app's resources in one of the formats below, as text."""

from __future__ import annotations

import json
from typing import Any

from cloudq.core.errors import ConfigurationError
from cloudq.infra.model import Resources

FORMATS = ("cloudformation", "serverless", "iam")


def render(resources: Resources, format: str, *, environment: dict[str, str] | None = None) -> str:  # noqa: A002
    """The text of ``format``: CloudFormation or serverless.yml as YAML, IAM documents as JSON.
    Raises ``ConfigurationError`` for an unknown format or resources AWS would refuse."""
    if format == "cloudformation":
        from cloudq.infra.cloudformation import template

        return to_yaml(template(resources, environment=environment))
    if format == "serverless":
        from cloudq.infra.serverless import serverless

        return to_yaml(serverless(resources))
    if format == "iam":
        from cloudq.infra.iam import iam_documents

        return json.dumps(iam_documents(resources), indent=2) + "\n"
    raise ConfigurationError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")


def to_yaml(document: dict[str, Any]) -> str:
    """Block-style YAML in the order the template was built (PyYAML, from the ``cli`` extra)."""
    try:
        import yaml
    except ModuleNotFoundError:
        raise ConfigurationError("rendering YAML needs PyYAML: pip install 'cloudq[cli]'") from None
    header = "# Rendered by `cloudq infra render`; edit the app, not this file.\n"
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=100)
