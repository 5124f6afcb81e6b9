"""The lifecycle watch: a scheduled function that reads bedrock:GetFoundationModel for every
configured model and publishes `ModelsNotActive` / `ModelLifecycleUnknown`, and the alarms
that turn those (and the functions' `ModelFallbacks`) into notifications on the alarm topic.

Bedrock marks a model LEGACY months before its end of life; after it, every call fails. The
watch says so ahead of time, ModelFallbacks says when jobs are already running on a fallback.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from img2img.catalog import base_model_id
from img2img.domain.lifecycle import configured_base_ids
from infra.checkov import LOG_GROUP_DEFAULT_ENCRYPTION, NO_VPC, PLAIN_ENVIRONMENT, skip_check
from infra.config import EnvironmentConfig
from infra.functions import (
    ARCHITECTURE,
    LOG_RETENTION,
    METRICS_NAMESPACE,
    RUNTIME,
    RUNTIME_REASON,
    XRAY_REASON,
    Functions,
)
from infra.monitoring import Monitoring, model_failure_dimensions
from infra.nag import acknowledge
from infra.removal import removal_policy

LIFECYCLE_HANDLER = "img2img.handlers.lifecycle.handler"
KIND = "lifecycle"
MEMORY_MB = 256
TIMEOUT_SECONDS = 60

MODELS_NOT_ACTIVE_METRIC = "ModelsNotActive"
MODEL_LIFECYCLE_UNKNOWN_METRIC = "ModelLifecycleUnknown"
MODEL_FALLBACKS_METRIC = "ModelFallbacks"


def lifecycle_model_arns(config: EnvironmentConfig, partition: str) -> list[str]:
    """GetFoundationModel takes the base model id (an inference profile `us.<id>` is read by its
    model) and is authorized on the foundation-model ARN in the region it is called in."""
    region = config.model_region
    return [
        f"arn:{partition}:bedrock:{region}::foundation-model/{base}"
        for base in configured_base_ids(config.configured_model_ids)
    ]


def lifecycle_profile_arns(config: EnvironmentConfig, partition: str, account: str) -> list[str]:
    """GetInferenceProfile, for the configured `us.`-style profiles (read when GetFoundationModel
    does not find their model in the region): authorized on the profile's ARN in this account."""
    region = config.model_region
    return [
        f"arn:{partition}:bedrock:{region}:{account}:inference-profile/{model_id}"
        for model_id in dict.fromkeys(config.configured_model_ids)
        if base_model_id(model_id) != model_id
    ]


class LifecycleWatch(Construct):
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
        self._config = config
        stack = Stack.of(self)
        self.function = self._function(functions)
        assert self.function.role is not None
        self.model_arns = lifecycle_model_arns(config, stack.partition)
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["bedrock:GetFoundationModel"], resources=self.model_arns)
        )
        self.profile_arns = lifecycle_profile_arns(config, stack.partition, stack.account)
        if self.profile_arns:
            self.function.add_to_role_policy(
                iam.PolicyStatement(actions=["bedrock:GetInferenceProfile"], resources=self.profile_arns)
            )
        acknowledge(self.function.role, "AwsSolutions-IAM5", XRAY_REASON, finding="Resource::*")

        self.rule = events.Rule(
            self,
            "Schedule",
            rule_name=f"{config.stack_name}-lifecycle-watch",
            description=f"{config.stack_name}: checks the configured models' Bedrock lifecycle",
            schedule=events.Schedule.expression(config.lifecycle_watch_schedule),
            # A run that fails is retried by Lambda's asynchronous invocation (twice); the next
            # scheduled run is the retry after that.
            targets=[targets.LambdaFunction(self.function)],
        )

        self._monitoring = monitoring
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        dimensions = model_failure_dimensions(config)  # service + environment, as the functions publish
        day, five_minutes = Duration.days(1), Duration.minutes(5)
        self.models_not_active = cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=MODELS_NOT_ACTIVE_METRIC,
            dimensions_map=dimensions,
            statistic="Maximum",
            period=day,
        )
        self._alarm(
            "ModelLifecycle",
            self.models_not_active,
            description="A configured model is LEGACY or gone on Bedrock (the lifecycle watch's log "
            "names it): move allowed_model_ids / fallback_model_ids in cdk.json to a live model.",
            # The metric is a verdict published once per run, not a rate: between runs (a gap in
            # the daily window, or a weekly cron) there is nothing new to judge, so the alarm
            # keeps the last verdict. "breaching" would page whenever a run is late; "not
            # breaching" would send OK for a model still LEGACY. A watch that stops working is
            # caught by LifecycleWatchFailed instead.
            treat_missing_data=cloudwatch.TreatMissingData.IGNORE,
        )
        self.model_fallbacks = cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=MODEL_FALLBACKS_METRIC,
            dimensions_map=dimensions,
            statistic="Sum",
            period=five_minutes,
        )
        self._alarm(
            "ModelFallbacks",
            self.model_fallbacks,
            description="Jobs ran on a fallback model because the chosen one is gone or denied: "
            "results differ from what callers chose; replace the model in cdk.json.",
            # Published only when a job fell back: no data is no fallback.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self._alarm(
            "LifecycleWatchFailed",
            cloudwatch.MathExpression(
                expression="FILL(errors, 0) + FILL(unknown, 0)",
                using_metrics={
                    "errors": self.function.metric_errors(period=day, statistic="Sum"),
                    "unknown": cloudwatch.Metric(
                        namespace=METRICS_NAMESPACE,
                        metric_name=MODEL_LIFECYCLE_UNKNOWN_METRIC,
                        dimensions_map=dimensions,
                        statistic="Maximum",
                        period=day,
                    ),
                },
                label="lifecycle watch errors + models it could not read",
                period=day,
            ),
            description="The lifecycle watch failed, or could not read a model's state (access "
            "denied, throttled): ModelLifecycle is not being kept up to date. See its log.",
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def _function(self, functions: Functions) -> lambda_.Function:
        """Built as infra/functions.py builds the api and the worker: same asset, runtime,
        architecture, settings variables, tracing, explicit log group and own role."""
        config = self._config
        function_name = f"{config.stack_name}-{KIND}"
        log_group = logs.LogGroup(
            self,
            "LogGroup",
            log_group_name=f"/aws/lambda/{function_name}",
            retention=LOG_RETENTION[config.log_retention_days],
            removal_policy=removal_policy(config),
        )
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{function_name}: least privilege for the {KIND} function",
        )
        log_group.grant_write(role)
        # img2img.config.Settings needs the same variables as the other functions (it validates
        # the model lists against each other); the watch only reads the model lists from them.
        environment = dict(functions.common_env)
        asset = functions.code_asset
        function = lambda_.Function(
            self,
            "Function",
            function_name=function_name,
            description=f"{config.stack_name}: reads the configured models' Bedrock lifecycle state",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=LIFECYCLE_HANDLER,
            # Same path and hash as the other functions' code: CDK stages and uploads it once.
            code=lambda_.Code.from_asset(str(asset.path), asset_hash=asset.sha256),
            memory_size=MEMORY_MB,
            timeout=Duration.seconds(TIMEOUT_SECONDS),
            role=role,
            log_group=log_group,
            tracing=lambda_.Tracing.ACTIVE,
            environment=environment,
        )
        acknowledge(function, "AwsSolutions-L1", RUNTIME_REASON)
        skip_check(log_group, "CKV_AWS_158", LOG_GROUP_DEFAULT_ENCRYPTION)
        skip_check(function, "CKV_AWS_117", NO_VPC)
        skip_check(function, "CKV_AWS_173", PLAIN_ENVIRONMENT)
        skip_check(
            function,
            "CKV_AWS_115",
            "Invoked only by its EventBridge schedule (once a day by default) and done in seconds; "
            "reserving concurrency would withhold capacity from the account for nothing.",
        )
        skip_check(
            function,
            "CKV_AWS_116",
            "Its event is a schedule tick with no payload worth keeping: a failed run raises the "
            "LifecycleWatchFailed alarm and the next run checks again, so a dead-letter queue "
            "would only collect empty events.",
        )
        # As in infra/functions.py: depend on the role's policy only (cfn-lint W3005), so the
        # function never runs before its permissions exist.
        policy = role.node.find_child("DefaultPolicy").node.default_child
        cfn_function = function.node.default_child
        assert isinstance(policy, iam.CfnPolicy) and isinstance(cfn_function, lambda_.CfnFunction)
        cfn_function.add_override("DependsOn", [Stack.of(self).get_logical_id(policy)])
        return function

    def _alarm(
        self,
        name: str,
        metric: cloudwatch.IMetric,
        *,
        description: str,
        treat_missing_data: cloudwatch.TreatMissingData,
    ) -> cloudwatch.Alarm:
        alarm = self._monitoring.alarm(
            self, name, metric, threshold=1, description=description, treat_missing_data=treat_missing_data
        )
        self.alarms[name] = alarm
        return alarm
