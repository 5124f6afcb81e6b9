"""The jobs queue (fed by the S3 door's notifications and by the API's async jobs), its
dead-letter queue, and the table that holds job records and Powertools idempotency records."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import EnvironmentConfig
from infra.nag import acknowledge

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
            retention_period=Duration.days(14),  # the longest SQS keeps a message: time to redrive
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
            retention_period=Duration.days(4),
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
            removal_policy=RemovalPolicy.DESTROY if config.destroy_on_delete else RemovalPolicy.RETAIN,
        )
        if not config.point_in_time_recovery:
            acknowledge(
                self.table,
                "AwsSolutions-DDB3",
                f"point_in_time_recovery is off for environment '{config.name}' in cdk.json: its job "
                "and idempotency records expire within days and a lost record only means a job is "
                "re-run; environments that need restores turn it on.",
            )
