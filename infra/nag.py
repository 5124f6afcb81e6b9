"""cdk-nag (v3) wiring and the one way this app acknowledges a finding.

Every acknowledgement names one rule, and for rules that report several findings per resource
(IAM4, IAM5) the exact finding, on the construct that holds the resource, with the reason.
Nothing is acknowledged on the stack or the app.

With the context flag `img2img:nag-dry-run` set, acknowledgements are only recorded (as node
metadata) and not applied: tests use it to prove each acknowledgement still matches a real
finding, so none outlives the reason it was written for.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

DRY_RUN_CONTEXT_KEY = "img2img:nag-dry-run"
RECORD_METADATA_TYPE = "img2img:nag-acknowledgement"


def acknowledge(scope: IConstruct, rule: str, reason: str, *, finding: str | None = None) -> None:
    """Acknowledge `rule` (`AwsSolutions-IAM5`), or one finding of it (`Resource::*`), on `scope`."""
    if not rule.startswith("AwsSolutions-") or "[" in rule:
        raise ValueError(f"name the rule as AwsSolutions-<ID> and pass the finding separately, not {rule!r}")
    if len(reason) < 40:
        raise ValueError(f"say why {rule} does not apply to {scope.node.path} (a sentence, not {reason!r})")
    rule_id = f"{rule}[{finding}]" if finding else rule
    scope.node.add_metadata(RECORD_METADATA_TYPE, {"id": rule_id, "reason": reason})
    if scope.node.try_get_context(DRY_RUN_CONTEXT_KEY):
        return
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def add_nag_checks(app: App) -> AwsSolutionsChecks:
    """Run the AWS Solutions rule pack on every synth: any unacknowledged finding fails it."""
    pack = AwsSolutionsChecks(app, verbose=True)
    Validations.of(app).add_plugins(pack)
    return pack
