"""Acknowledging a checkov finding (tests/infra/test_checkov.py scans every environment's
template) in the template itself, where checkov reads it: resource-level Metadata

    checkov: {skip: [{id: CKV_AWS_<n>, comment: <why it does not apply>}]}

Every skip names one check and says why, on the resource it is about. Nothing is skipped on
the command line, so a new finding fails the test until it is fixed or acknowledged here.
"""

from __future__ import annotations

import re
from typing import Any

from aws_cdk import CfnResource
from constructs import IConstruct

METADATA_KEY = "checkov"
CHECK_ID = re.compile(r"^CKV2?_AWS_\d+$")


def skip_check(scope: IConstruct, check_id: str, comment: str) -> None:
    """Skip `check_id` on the CloudFormation resource of `scope` (an L2 construct or a CfnResource)."""
    if not CHECK_ID.match(check_id):
        raise ValueError(f"name one checkov check as CKV_AWS_<n>, not {check_id!r}")
    if len(comment) < 40:
        raise ValueError(f"say why {check_id} does not apply to {scope.node.path} (a sentence)")
    resource = scope if isinstance(scope, CfnResource) else scope.node.default_child
    if not isinstance(resource, CfnResource):
        raise TypeError(f"{scope.node.path} has no CloudFormation resource to carry the skip")
    metadata: dict[str, Any] = dict(resource.get_metadata(METADATA_KEY) or {})
    skips = list(metadata.get("skip", []))
    if any(skip["id"] == check_id for skip in skips):
        raise ValueError(f"{check_id} is already skipped on {scope.node.path}")
    skips.append({"id": check_id, "comment": comment})
    metadata["skip"] = skips
    resource.add_metadata(METADATA_KEY, metadata)


# Reasons shared by several resources.
NO_VPC = (
    "The function reaches only AWS public service endpoints (S3, SQS, DynamoDB, Bedrock, "
    "CloudWatch) over TLS with IAM auth and no private resource exists to reach; a VPC would add "
    "NAT or interface endpoints (cost, cold starts) and no isolation."
)
PLAIN_ENVIRONMENT = (
    "The environment holds only resource names, model ids and tuning values, no secret; Lambda "
    "already encrypts it at rest with the AWS managed key, and a customer managed key would add "
    "cost and a decrypt grant without protecting anything sensitive."
)
LOG_GROUP_DEFAULT_ENCRYPTION = (
    "CloudWatch Logs encrypts every log group at rest by default; these logs hold request "
    "metadata and errors, never images, prompts or bodies (data tracing is off), so a customer "
    "managed key would add cost and a key policy for the logs service without a need for it."
)
SYNC_INVOCATION_NO_DLQ = (
    "Invoked synchronously ({by}): a failure goes back to the caller (or to the queue's own "
    "redrive dead-letter queue), so a function dead-letter queue for asynchronous events would "
    "never receive anything."
)
