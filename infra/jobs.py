"""The jobs queue (fed by the S3 door's notifications and by the API's async jobs), its
dead-letter queue, and the table that holds job records (one item per job, moved through its
lifecycle by conditional writes)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.checkov import skip_check
from infra.config import DEAD_LETTER_RETENTION_DAYS, QUEUE_RETENTION_DAYS, EnvironmentConfig
from infra.nag import acknowledge
from infra.removal import removal_policy

TABLE_PARTITION_KEY = "pk"
TABLE_TTL_ATTRIBUTE = "ttl"


class Jobs(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig) -> None:
        super().__init__(scope, construct_id)
        name = config.stack_name

        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            queue_name=f"{name}-dlq",
            retention_period=Duration.days(DEAD_LETTER_RETENTION_DAYS),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            queue_name=f"{name}-jobs",
            # A batch being worked on stays invisible well past the worker's timeout, so a slow
            # model call is never handed to a second worker while the first still runs.
            visibility_timeout=Duration.seconds(config.queue_visibility_timeout_seconds),
            retention_period=Duration.days(QUEUE_RETENTION_DAYS),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=config.max_receive_count, queue=self.dead_letter_queue
            ),
        )

        self.table = dynamodb.Table(
            self,
            "JobsTable",
            table_name=f"{name}-jobs",
            partition_key=dynamodb.Attribute(name=TABLE_PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=TABLE_TTL_ATTRIBUTE,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=config.point_in_time_recovery
            ),
            deletion_protection=not config.destroy_on_delete,
            removal_policy=removal_policy(config),
        )
        for queue in (self.queue, self.dead_letter_queue):
            skip_check(
                queue,
                "CKV_AWS_27",
                "Encrypted at rest with SQS managed keys (SqsManagedSseEnabled), which this check "
                "does not recognise; messages hold job ids and object keys, not images, and a KMS "
                "key would need a key grant for S3's notifications.",
            )
        skip_check(
            self.table,
            "CKV_AWS_119",
            "Encrypted at rest with the AWS owned key (DynamoDB's default); the table holds job "
            "records that expire within days and is never shared across "
            "accounts, so a customer managed key would add cost and KMS calls without a policy need.",
        )
        if not config.point_in_time_recovery:
            skip_check(
                self.table,
                "CKV_AWS_28",
                f"point_in_time_recovery is off for environment '{config.name}' in cdk.json: its "
                "records expire within days and a lost one only means a job is re-run.",
            )
            acknowledge(
                self.table,
                "AwsSolutions-DDB3",
                f"point_in_time_recovery is off for environment '{config.name}' in cdk.json: its job "
                "records expire within days and a lost record only means a job is "
                "re-run; environments that need restores turn it on.",
            )

    def only_these_may_send(
        self, *, roles: tuple[iam.IRole, ...], notifying_bucket_arn: str, redrivers: tuple[str, ...] = ()
    ) -> None:
        """Refuse sqs:SendMessage on the jobs queue to everyone but `roles` (the api function's,
        which queues async jobs, and the worker's, which fans manifests out) and S3 delivering
        `notifying_bucket_arn`'s notifications (allowed by the statement infra/storage.py adds,
        with its own source conditions).

        One Deny, Principal "*", conditions under ArnNotEquals, whose keys are ANDed and which,
        being a negated operator, matches when a key is absent from the request:
        - aws:PrincipalArn is none of the roles: true for every other principal (an
          administrator, the account root) and for a service principal, which has none.
        - aws:SourceArn is not the input bucket: true for every request an IAM principal makes
          (AWS sets aws:SourceArn only on a service's request made for a resource, and callers
          cannot set it), false only for S3 delivering the input bucket's notifications.
        So the roles and the bucket's notifications get through and every other sender is
        refused, whatever its own IAM policies allow. Only SendMessage is denied: the owner's
        management calls (attributes, this policy, purge) and the worker's event source mapping
        (receive, delete, change visibility) are untouched, so the queue stays manageable.
        Moving messages back from the dead-letter queue (StartMessageMoveTask) sends as its
        caller: the roles in `redrivers` (cdk.json's queue_redrive_principal_arns) are let through
        for that; everyone else must re-submit through the API or the inbox.
        """
        self.queue.add_to_resource_policy(
            iam.PolicyStatement(
                sid="DenySendExceptFunctionsAndInputBucket",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["sqs:SendMessage"],
                resources=[self.queue.queue_arn],
                conditions={
                    "ArnNotEquals": {
                        "aws:PrincipalArn": [*(role.role_arn for role in roles), *redrivers],
                        "aws:SourceArn": notifying_bucket_arn,
                    }
                },
            )
        )
