"""CloudFormation intrinsic functions, as the plain dicts a template is made of."""

from __future__ import annotations

from typing import Any

Template = dict[str, Any]


def ref(name: str) -> dict[str, str]:
    return {"Ref": name}


def get_att(resource: str, attribute: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [resource, attribute]}


def sub(text: str) -> dict[str, str]:
    return {"Fn::Sub": text}
