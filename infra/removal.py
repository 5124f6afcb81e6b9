"""What happens to the stack's data (buckets, table, log groups, the alarm topic's key) when the
stack deletes or replaces them, per the environment's `removal_policy`.

"retain" is CDK's RETAIN_ON_UPDATE_OR_DELETE, which CloudFormation writes as
`DeletionPolicy: RetainExceptOnCreate` and `UpdateReplacePolicy: Retain`: a resource is kept when
the stack is deleted or the resource replaced, but one created by a deployment that then fails
is deleted by the rollback. Plain Retain would keep it, and since the buckets, the table and the
log groups have names derived from the stack name, every retry of a failed first deployment
would then fail on "already exists" until someone deleted them by hand.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy

from infra.config import EnvironmentConfig


def removal_policy(config: EnvironmentConfig) -> RemovalPolicy:
    return RemovalPolicy.DESTROY if config.destroy_on_delete else RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE
