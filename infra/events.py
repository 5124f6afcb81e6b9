"""Job events (issue #23): the bus each finished job's "Image Job Finished" event goes to, the
functions' right to put events on that bus only, the alarm on events EventBridge refused, and
the optional webhook, delivered by EventBridge itself (a rule, an API destination and its
connection, AWS's retry policy, a dead-letter queue and an alarm) rather than by a delivery
loop of ours. There are no per-request callback URLs: they would let any caller make the
service call any address."""

from __future__ import annotations

from aws_cdk import Duration, SecretValue
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from img2img.domain.job_events import DETAIL_TYPE, SOURCE
from infra.checkov import skip_check
from infra.config import EnvironmentConfig, Webhook
from infra.functions import METRICS_NAMESPACE, Functions
from infra.monitoring import Monitoring, model_failure_dimensions
from infra.nag import acknowledge

EVENTS_UNDELIVERED_METRIC = "JobEventsUndelivered"  # handlers/observability.py publishes it
# EventBridge's retry policy for the webhook: its maxima (185 attempts over 24 hours), then the
# event goes to the dead-letter queue.
WEBHOOK_RETRY_ATTEMPTS = 185
WEBHOOK_MAX_EVENT_AGE = Duration.hours(24)


def job_events_pattern(config: EnvironmentConfig) -> events.EventPattern:
    """This environment's job events: environments sharing an account share its default bus."""
    return events.EventPattern(
        source=[SOURCE], detail_type=[DETAIL_TYPE], detail={"environment": [config.name]}
    )


class JobEvents(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        functions: Functions,
        monitoring: Monitoring,
    ) -> None:
        super().__init__(scope, construct_id)
        # The default bus, or one that exists already: a stack never owns a bus other stacks
        # or the account's own rules may rely on.
        self.bus = events.EventBus.from_event_bus_name(self, "Bus", config.event_bus_name)
        for function in (functions.api, functions.worker):
            self.bus.grant_put_events_to(function)
            function.add_environment("IMG2IMG_EVENT_BUS_NAME", config.event_bus_name)
        self.undelivered_alarm = monitoring.alarm(
            self,
            "JobEventsUndelivered",
            cloudwatch.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=EVENTS_UNDELIVERED_METRIC,
                dimensions_map=model_failure_dimensions(config),
                period=Duration.minutes(5),
                statistic="Sum",
            ),
            threshold=1,
            description="EventBridge refused jobs' 'Image Job Finished' events past their retries: "
            "the jobs are fine, but consumers and the webhook did not hear of them (the functions' "
            "logs name the jobs and the error code).",
        )
        self.webhook = (
            _WebhookDelivery(
                self, "Webhook", config=config, webhook=config.webhook, bus=self.bus, monitoring=monitoring
            )
            if config.webhook
            else None
        )


class _WebhookDelivery(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        webhook: Webhook,
        bus: events.IEventBus,
        monitoring: Monitoring,
    ) -> None:
        super().__init__(scope, construct_id)
        name = config.stack_name
        # EventBridge keeps the credential in a secret of its own, copied at deploy time from
        # yours (a dynamic reference: nothing is read at synth time).
        self.connection = events.Connection(
            self,
            "Connection",
            connection_name=f"{name}-webhook",
            description=f"{name}: the header the webhook receiver checks",
            authorization=events.Authorization.api_key(
                webhook.header_name, SecretValue.secrets_manager(webhook.secret_name)
            ),
        )
        self.destination = events.ApiDestination(
            self,
            "Destination",
            api_destination_name=f"{name}-webhook",
            description=f"{name}: every finished job's event, POSTed",
            connection=self.connection,
            endpoint=webhook.url,
            http_method=events.HttpMethod.POST,
        )
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            queue_name=f"{name}-webhook-dlq",
            retention_period=Duration.days(14),  # the longest SQS keeps a message
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        skip_check(
            self.dead_letter_queue,
            "CKV_AWS_27",
            "Encrypted at rest with SQS managed keys (SqsManagedSseEnabled), which this check does "
            "not recognise; messages hold job events (ids, statuses, S3 URIs), not images, and a "
            "KMS key would need a key grant for EventBridge.",
        )
        acknowledge(
            self.dead_letter_queue,
            "AwsSolutions-SQS3",
            "This queue is itself a dead-letter queue: the webhook rule's target sends the events "
            "it could not deliver here (cdk-nag recognizes only SQS redrive policies as DLQ use).",
        )
        self.rule = events.Rule(
            self,
            "Rule",
            description=f"{name}: job events to the webhook",
            event_bus=bus,
            event_pattern=job_events_pattern(config),
            targets=[
                targets.ApiDestination(
                    self.destination,
                    dead_letter_queue=self.dead_letter_queue,
                    retry_attempts=WEBHOOK_RETRY_ATTEMPTS,
                    max_event_age=WEBHOOK_MAX_EVENT_AGE,
                )
            ],
        )
        self.alarm = monitoring.alarm(
            self,
            "WebhookDeadLetters",
            self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(5), statistic="Maximum"
            ),
            threshold=1,
            description="Job events the webhook did not accept within EventBridge's retries (24 "
            "hours) are in its dead-letter queue: check the endpoint and its secret.",
        )
