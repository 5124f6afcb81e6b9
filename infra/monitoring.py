"""Alarms to an SNS topic (with an e-mail subscription when configured) and a dashboard.

Alarms: dead-letter queue not empty, the oldest queued job waiting too long, errors and
throttles of each function, the model-failure metric the functions publish, and the sync
route's p90 latency.

The functions publish `ModelFailures` (namespace `Img2Img`) through Powertools Metrics, whose
default dimension is `service`; they add `environment` (IMG2IMG_ENV) so that environments
sharing an account and region never feed each other's alarm. MODEL_FAILURE_DIMENSIONS is that
contract.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra.api import SYNC_ROUTE, Api
from infra.config import EnvironmentConfig
from infra.functions import METRICS_NAMESPACE, SERVICE_NAME, Functions
from infra.jobs import Jobs
from infra.removal import removal_policy

MODEL_FAILURES_METRIC = "ModelFailures"


def model_failure_dimensions(config: EnvironmentConfig) -> dict[str, str]:
    return {"service": SERVICE_NAME, "environment": config.name}


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        functions: Functions,
        jobs: Jobs,
        api: Api,
    ) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        stack = Stack.of(self)
        removal = removal_policy(config)

        # The topic is encrypted with its own key: CloudWatch cannot publish to a topic under
        # the AWS managed aws/sns key (its policy cannot grant CloudWatch). The key grants
        # CloudWatch exactly the statement AWS documents for an AWS service publishing to an
        # encrypted topic, with no condition (a condition the KMS request does not carry drops
        # every notification, visible only in alarm history):
        # https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services
        # The topic policy below is what limits publishing to this stack's alarms.
        alarms_of_this_stack = {
            "StringEquals": {"aws:SourceAccount": stack.account},
            "ArnLike": {
                "aws:SourceArn": f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:alarm:"
                f"{config.stack_name}-*"
            },
        }
        key = kms.Key(
            self,
            "AlarmTopicKey",
            description=f"{config.stack_name}: encrypts the alarm topic",
            enable_key_rotation=True,
            removal_policy=removal,
            pending_window=Duration.days(7),
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToUseTheKey",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:GenerateDataKey*", "kms:Decrypt"],
                resources=["*"],  # in a key policy "*" is this key
            )
        )
        self.topic = sns.Topic(
            self,
            "AlarmTopic",
            topic_name=f"{config.stack_name}-alarms",
            display_name=f"img2img {config.name} alarms",
            master_key=key,
            enforce_ssl=True,
        )
        # The TLS-only topic policy replaces SNS's default one, so allow the alarms explicitly.
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowThisStacksAlarmsToPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions=alarms_of_this_stack,
            )
        )
        if config.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
        self._action = cw_actions.SnsAction(self.topic)

        five_minutes = Duration.minutes(5)
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        self._alarm(
            "DeadLetterQueueNotEmpty",
            jobs.dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=five_minutes, statistic="Maximum"
            ),
            threshold=1,
            description="Jobs failed every delivery and wait in the dead-letter queue: inspect, then redrive "
            "as a role in queue_redrive_principal_arns (the queue refuses other senders).",
        )
        self._alarm(
            "QueueOldestMessageAge",
            jobs.queue.metric_approximate_age_of_oldest_message(period=five_minutes, statistic="Maximum"),
            threshold=config.queue_age_alarm_seconds,
            description=(
                f"A job has waited {config.queue_age_alarm_seconds} s or more in the jobs queue: the "
                "workers are not keeping up (concurrency, Bedrock quota) or not consuming at all."
            ),
        )
        for name, function in (("Api", functions.api), ("Worker", functions.worker)):
            self._function_alarms(name, function)
        self.model_failures = cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=MODEL_FAILURES_METRIC,
            dimensions_map=model_failure_dimensions(config),
            statistic="Sum",
            period=five_minutes,
        )
        self._alarm(
            "ModelFailures",
            self.model_failures,
            threshold=config.model_failures_alarm_threshold,
            description="Bedrock calls failed (model error, access denied, end of life): check the model.",
        )
        method, path = SYNC_ROUTE
        self.sync_latency = cloudwatch.Metric(
            namespace="AWS/ApiGateway",
            metric_name="Latency",
            dimensions_map={
                "ApiName": api.rest_api.rest_api_name,
                "Stage": api.stage_name,
                "Resource": path,
                "Method": method,
            },
            statistic="p90",
            period=five_minutes,
        )
        self._alarm(
            "SyncLatencyP90",
            self.sync_latency,
            threshold=config.sync_latency_p90_alarm_ms,
            evaluation_periods=3,
            datapoints_to_alarm=2,
            description=f"p90 latency of {method} {path} is high: slow callers should use POST /v1/jobs.",
        )

        self.dashboard = self._dashboard(functions, jobs, api)

    def _alarm(
        self,
        name: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        description: str,
        evaluation_periods: int = 1,
        datapoints_to_alarm: int = 1,
    ) -> cloudwatch.Alarm:
        alarm = self.alarm(
            self,
            name,
            metric,
            threshold=threshold,
            description=description,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=datapoints_to_alarm,
        )
        self.alarms[name] = alarm
        return alarm

    def alarm(
        self,
        scope: Construct,
        name: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        description: str,
        evaluation_periods: int = 1,
        datapoints_to_alarm: int = 1,
        treat_missing_data: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
    ) -> cloudwatch.Alarm:
        """An alarm of this stack (under `scope`), with its alarm and OK actions on the topic.
        Named under the stack's prefix: the topic's key policy admits only those alarms."""
        alarm = cloudwatch.Alarm(
            scope,
            f"{name}Alarm",
            alarm_name=f"{self.config.stack_name}-{name}",
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=datapoints_to_alarm,
            treat_missing_data=treat_missing_data,
        )
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)
        return alarm

    def _function_alarms(self, name: str, function: lambda_.IFunction) -> None:
        period = Duration.minutes(5)
        self._alarm(
            f"{name}Errors",
            function.metric_errors(period=period, statistic="Sum"),
            threshold=1,
            description=f"The {name.lower()} function raised errors (unhandled exceptions or timeouts).",
        )
        self._alarm(
            f"{name}Throttles",
            function.metric_throttles(period=period, statistic="Sum"),
            threshold=1,
            description=f"The {name.lower()} function was throttled: check account concurrency.",
        )

    def _dashboard(self, functions: Functions, jobs: Jobs, api: Api) -> cloudwatch.Dashboard:
        dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=self.config.stack_name, default_interval=Duration.hours(3)
        )
        rest_api = api.rest_api
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(
                title="Alarms", alarms=list(self.alarms.values()), width=24, height=3
            )
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="API requests and errors",
                left=[
                    rest_api.metric_count(),
                    rest_api.metric_client_error(),
                    rest_api.metric_server_error(),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Sync route latency (p50, p90)",
                left=[self.sync_latency.with_(statistic="p50"), self.sync_latency],
                width=8,
            ),
            cloudwatch.GraphWidget(title="Model failures", left=[self.model_failures], width=8),
        )
        dashboard.add_widgets(
            *(
                cloudwatch.GraphWidget(
                    title=f"{label} function",
                    left=[
                        function.metric_invocations(),
                        function.metric_errors(),
                        function.metric_throttles(),
                    ],
                    right=[function.metric_duration(statistic="p90")],
                    width=12,
                )
                for label, function in (("api", functions.api), ("worker", functions.worker))
            )
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Jobs queue",
                left=[
                    jobs.queue.metric_approximate_number_of_messages_visible(),
                    jobs.queue.metric_approximate_number_of_messages_not_visible(),
                ],
                right=[jobs.queue.metric_approximate_age_of_oldest_message()],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Dead-letter queue",
                left=[jobs.dead_letter_queue.metric_approximate_number_of_messages_visible()],
                width=12,
            ),
        )
        return dashboard
