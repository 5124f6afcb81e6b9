"""Reading synthesized templates: intrinsics rendered as readable strings, IAM policies
flattened to one (effect, action, resource, condition) row per grant, so tests can compare
exact sets of permissions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


def render(value: Any) -> str:
    """A CloudFormation value as text: Ref -> <Id>, GetAtt -> <Id.Attr>, Join -> concatenation."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            return f"<{arg}>"
        if key == "Fn::GetAtt":
            return f"<{arg[0]}.{arg[1]}>"
        if key == "Fn::Join":
            separator, parts = arg
            return separator.join(render(part) for part in parts)
    return json.dumps(value, sort_keys=True)


@dataclass(frozen=True)
class Grant:
    effect: str
    action: str
    resource: str
    condition: str  # JSON of the statement's Condition, "" when none


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def flatten(document: dict[str, Any]) -> set[Grant]:
    grants = set()
    for statement in document["Statement"]:
        condition = render_condition(statement["Condition"]) if "Condition" in statement else ""
        for action in _as_list(statement["Action"]):
            for resource in _as_list(statement.get("Resource", "*")):
                grants.add(Grant(statement["Effect"], action, render(resource), condition))
    return grants


def render_condition(condition: dict[str, Any]) -> str:
    rendered = {
        operator: {key: [render(v) for v in _as_list(values)] for key, values in tests.items()}
        for operator, tests in condition.items()
    }
    return json.dumps(rendered, sort_keys=True)


def role_grants(template: dict[str, Any], role_id: str) -> set[Grant]:
    """Every grant of a role: its inline policies and the AWS::IAM::Policy resources attached."""
    resources = template["Resources"]
    grants: set[Grant] = set()
    for policy in resources[role_id]["Properties"].get("Policies", []):
        grants |= flatten(policy["PolicyDocument"])
    for resource in resources.values():
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in resource["Properties"].get(
            "Roles", []
        ):
            grants |= flatten(resource["Properties"]["PolicyDocument"])
    return grants


def function_role_id(template: dict[str, Any], function_id: str) -> str:
    role = template["Resources"][function_id]["Properties"]["Role"]
    assert role["Fn::GetAtt"][1] == "Arn"
    return str(role["Fn::GetAtt"][0])


def by_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == resource_type}
