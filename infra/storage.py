"""The three buckets: input (the S3 door and the API's sources), output (results) and the bucket
their S3 server access logs go to. All block public access, refuse plain HTTP and TLS < 1.2,
encrypt at rest (SSE-S3) and expire objects after the configured number of days.

The input bucket sends `inbox/` ObjectCreated notifications straight to the jobs queue, set on
the bucket itself (no custom resource): bucket names are derived from the stack name, so the
queue policy can name the bucket's ARN without referring to the bucket, and the bucket waits
for that policy (S3 checks it can deliver when the configuration is set).
"""

from __future__ import annotations

from aws_cdk import CfnResource, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from img2img.vocabulary import API_SOURCES, INBOX, INPUT_PREFIXES, UPLOADS
from infra.checkov import NO_VPC, skip_check
from infra.config import EnvironmentConfig
from infra.removal import removal_policy

# The key prefixes are the service's vocabulary (img2img/vocabulary.py); the worker reads every
# input prefix. What the api function reads: its callers' own sources only, never inbox/.
API_READ_PREFIXES = (API_SOURCES, UPLOADS)
# How long a browser may reuse a CORS preflight answer (the page's origin never changes).
PREFLIGHT_CACHE_SECONDS = 3000


def bucket_name(config: EnvironmentConfig, kind: str, account: str) -> str:
    """Globally unique and derived from the stack name: img2img-<env>-<kind>-<account>-<region>."""
    return f"{config.bucket_name_prefix}-{kind}-{account}-{config.region}"


class Storage(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, queue: sqs.Queue
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        destroy = config.destroy_on_delete
        removal = removal_policy(config)

        common = {
            "encryption": s3.BucketEncryption.S3_MANAGED,
            "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
            "enforce_ssl": True,
            "minimum_tls_version": 1.2,
            "object_ownership": s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            "removal_policy": removal,
            "auto_delete_objects": destroy,
        }

        # Versioned like the others: a log object deleted or overwritten stays one more day.
        self.access_logs_bucket = s3.Bucket(
            self,
            "AccessLogsBucket",
            bucket_name=bucket_name(config, "logs", stack.account),
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(config.access_log_expiry_days),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                ),
                s3.LifecycleRule(id="old-versions", noncurrent_version_expiration=Duration.days(1)),
                s3.LifecycleRule(id="expired-delete-markers", expired_object_delete_marker=True),
            ],
            **common,  # type: ignore[arg-type]
        )
        skip_check(
            self.access_logs_bucket,
            "CKV_AWS_18",
            "This is the access log bucket the other two log to; logging its own access would "
            "write a log object for every log object written, without end.",
        )
        input_name = bucket_name(config, "input", stack.account)
        self.input_bucket = s3.Bucket(
            self,
            "InputBucket",
            bucket_name=input_name,
            versioned=True,
            server_access_logs_bucket=self.access_logs_bucket,
            server_access_logs_prefix="input/",
            lifecycle_rules=[
                *(
                    s3.LifecycleRule(
                        id=f"expire-{prefix.rstrip('/')}",
                        prefix=prefix,
                        expiration=Duration.days(config.input_expiry_days),
                    )
                    for prefix in INPUT_PREFIXES
                ),
                s3.LifecycleRule(
                    id="old-versions-and-uploads",
                    noncurrent_version_expiration=Duration.days(1),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                ),
                s3.LifecycleRule(id="expired-delete-markers", expired_object_delete_marker=True),
            ],
            **common,  # type: ignore[arg-type]
        )

        # Versioned: a result written twice under one key (a redelivered job, a retried write)
        # never silently replaces the earlier one; the earlier version lives one more day.
        self.output_bucket = s3.Bucket(
            self,
            "OutputBucket",
            bucket_name=bucket_name(config, "output", stack.account),
            versioned=True,
            server_access_logs_bucket=self.access_logs_bucket,
            server_access_logs_prefix="output/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-results",
                    expiration=Duration.days(config.result_expiry_days),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                ),
                s3.LifecycleRule(id="old-versions", noncurrent_version_expiration=Duration.days(1)),
                s3.LifecycleRule(id="expired-delete-markers", expired_object_delete_marker=True),
            ],
            **common,  # type: ignore[arg-type]
        )

        # The S3 door: inbox/ ObjectCreated -> the jobs queue. Only this bucket, in this account.
        input_arn = f"arn:{stack.partition}:s3:::{input_name}"
        # The bucket's ARN without a reference to the bucket (which waits for the queue policy).
        self.input_bucket_arn = input_arn
        queue.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowInputBucketNotifications",
                principals=[iam.ServicePrincipal("s3.amazonaws.com")],
                actions=["sqs:SendMessage"],
                resources=[queue.queue_arn],
                conditions={
                    "ArnEquals": {"aws:SourceArn": input_arn},
                    "StringEquals": {"aws:SourceAccount": stack.account},
                },
            )
        )
        cfn_input = self.input_bucket.node.default_child
        assert isinstance(cfn_input, s3.CfnBucket)
        cfn_input.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
            queue_configurations=[
                s3.CfnBucket.QueueConfigurationProperty(
                    event="s3:ObjectCreated:*",
                    queue=queue.queue_arn,
                    filter=s3.CfnBucket.NotificationFilterProperty(
                        s3_key=s3.CfnBucket.S3KeyFilterProperty(
                            rules=[s3.CfnBucket.FilterRuleProperty(name="prefix", value=INBOX)]
                        )
                    ),
                )
            ]
        )
        queue_policy = queue.node.find_child("Policy")  # the QueuePolicy add_to_resource_policy made
        assert isinstance(queue_policy, sqs.QueuePolicy)
        cfn_input.node.add_dependency(queue_policy)

        if destroy:
            # CDK's provider that empties the buckets on destroy: its handler both GetAtts and
            # DependsOn its role (cfn-lint W3005); the GetAtt alone orders them.
            provider = stack.node.find_child("Custom::S3AutoDeleteObjectsCustomResourceProvider")
            handler = provider.node.find_child("Handler")
            assert isinstance(handler, CfnResource)
            handler.add_deletion_override("DependsOn")
            skip_check(handler, "CKV_AWS_117", NO_VPC)
            skip_check(
                handler,
                "CKV_AWS_115",
                "CDK's provider that empties the buckets: CloudFormation invokes it only while "
                "deleting the stack (environments with removal_policy 'destroy'), one call per bucket.",
            )
            skip_check(
                handler,
                "CKV_AWS_116",
                "CloudFormation invokes this custom resource handler and waits for its answer; a "
                "failure fails the stack operation, so a dead-letter queue would never be read.",
            )

    def allow_page(self, origin: str) -> None:
        """api_auth "cognito": the page, served from `origin`, uploads sources with the presigned
        POSTs POST /v1/uploads issues, and reads results' metadata JSON from presigned GETs.
        Browsers let it read S3's answers only if the bucket allows its origin, and no other."""
        self.input_bucket.add_cors_rule(
            allowed_methods=[s3.HttpMethods.POST],
            allowed_origins=[origin],
            allowed_headers=["*"],  # a form POST sends only simple headers; the policy limits the rest
            max_age=PREFLIGHT_CACHE_SECONDS,
        )
        self.output_bucket.add_cors_rule(
            allowed_methods=[s3.HttpMethods.GET, s3.HttpMethods.HEAD],
            allowed_origins=[origin],
            max_age=PREFLIGHT_CACHE_SECONDS,
        )
