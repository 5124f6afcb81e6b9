"""The two Lambda functions (api and worker): one code asset built without Docker, arm64, the
Python runtime `make test` runs the function code on (3.13), X-Ray active, explicit log groups,
and one role each granting exactly what that function does and nothing else.

With `snapstart: true` (cdk.json, per environment) each function also publishes a version with
SnapStart (imports, settings and clients paid before the snapshot: wiring.prime) behind a `live`
alias, and API Gateway's integration and the queue's event source mapping invoke the alias
(SnapStart covers published versions only, never $LATEST). With it off, neither exists and
both invoke the function itself, as before."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from img2img.catalog import split_inference_profile
from img2img.vocabulary import (
    API_RESULTS,
    API_SOURCES,
    INPUT_PREFIXES,
    MANIFEST_RESULTS,
    RESULTS,
    UPLOADS,
)
from infra import asset as asset_builder
from infra.checkov import (
    LOG_GROUP_DEFAULT_ENCRYPTION,
    NO_VPC,
    PLAIN_ENVIRONMENT,
    SYNC_INVOCATION_NO_DLQ,
    skip_check,
)
from infra.config import EnvironmentConfig
from infra.jobs import Jobs
from infra.nag import acknowledge
from infra.removal import removal_policy
from infra.storage import API_READ_PREFIXES, Storage

RUNTIME = lambda_.Runtime.PYTHON_3_13
# cdk-nag's AwsSolutions-L1 wants the newest runtime (python3.14).
RUNTIME_REASON = (
    "python3.13 is the newest Lambda Python runtime that the tests run the function code on: "
    "the Makefile builds .venv with CPython 3.13, and the asset's wheels and bytecode are built "
    "for it. No CPython 3.14 is available to the tests yet; move when there is one."
)
# With SnapStart: the alias every invoker names; it moves to each newly published version.
LIVE_ALIAS = "live"
ARCHITECTURE = lambda_.Architecture.ARM_64
API_HANDLER = "img2img.handlers.api.handler"
WORKER_HANDLER = "img2img.handlers.worker.handler"
SERVICE_NAME = "img2img"
METRICS_NAMESPACE = "Img2Img"
# Each function's own: the model client's read timeout (img2img.config.Settings), its timeout
# less sync_margin_seconds (for the api, the sync budget API Gateway's timeout leaves).
MODEL_READ_TIMEOUT = "IMG2IMG_MODEL_READ_TIMEOUT_SECONDS"

# The asset's wheels are built for exactly this runtime and architecture.
assert RUNTIME.name == f"python{asset_builder.PYTHON_VERSION}", "infra/asset.py builds for another Python"
assert ARCHITECTURE.name == asset_builder.ARCHITECTURE, "infra/asset.py builds for another architecture"

LOG_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
}

# What the functions do with the table (job records, each a state machine): item
# reads and conditional updates (adapters/jobs.py makes no other call). No scans, queries or streams.
TABLE_ITEM_ACTIONS = ("dynamodb:GetItem", "dynamodb:UpdateItem")
# Reading a source by the version id its S3 event names needs GetObjectVersion (the input
# bucket is versioned); reading the latest needs GetObject.
SOURCE_READ_ACTIONS = ["s3:GetObject", "s3:GetObjectVersion"]

XRAY_REASON = (
    "X-Ray's PutTraceSegments and PutTelemetryRecords take no resource ARN (the Service "
    "Authorization Reference lists none), so active tracing can only be granted on '*'."
)


@dataclass(frozen=True)
class ModelGrant:
    """What bedrock:InvokeModel must be allowed on for one configured model id."""

    model_id: str
    resources: tuple[str, ...]  # foundation-model or inference-profile ARN in the model region
    routed_model_arn: str | None = None  # for a profile: its model in any region it routes to
    profile_arn: str | None = None


def model_grants(config: EnvironmentConfig, partition: str, account: str) -> list[ModelGrant]:
    grants = []
    region = config.model_region
    for model_id in config.configured_model_ids:
        geography, base = split_inference_profile(model_id)
        if geography is None:
            grants.append(
                ModelGrant(model_id, (f"arn:{partition}:bedrock:{region}::foundation-model/{model_id}",))
            )
            continue
        profile_arn = f"arn:{partition}:bedrock:{region}:{account}:inference-profile/{model_id}"
        # A cross-region profile routes each call to its model in one of the profile's
        # destination regions (chosen by Bedrock at call time, and the list grows): the region
        # is a wildcard, and the condition admits those calls only when made through this profile.
        grants.append(
            ModelGrant(
                model_id,
                (profile_arn,),
                routed_model_arn=f"arn:{partition}:bedrock:*::foundation-model/{base}",
                profile_arn=profile_arn,
            )
        )
    return grants


class Functions(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        storage: Storage,
        jobs: Jobs,
        code_asset: asset_builder.Asset,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self.code_asset = code_asset
        stack = Stack.of(self)
        code = lambda_.Code.from_asset(str(code_asset.path), asset_hash=code_asset.sha256)

        common_env = {
            "IMG2IMG_ENV": config.name,
            "IMG2IMG_INPUT_BUCKET": storage.input_bucket.bucket_name,
            "IMG2IMG_OUTPUT_BUCKET": storage.output_bucket.bucket_name,
            "IMG2IMG_JOBS_TABLE": jobs.table.table_name,
            "IMG2IMG_QUEUE_URL": jobs.queue.queue_url,
            "IMG2IMG_ALLOWED_MODEL_IDS": ",".join(config.allowed_model_ids),
            "IMG2IMG_DEFAULT_MODEL_ID": config.default_model_id,
            "IMG2IMG_FALLBACK_MODEL_IDS": ",".join(config.fallback_model_ids),
            "IMG2IMG_JOB_TTL_DAYS": str(config.job_ttl_days),
            "IMG2IMG_PRESIGN_EXPIRY_SECONDS": str(config.presign_expiry_seconds),
            # The worker records a job as FAILED on the queue's last delivery, so it must know it.
            "IMG2IMG_MAX_RECEIVE_COUNT": str(config.max_receive_count),
            # How callers authenticate: GET /v1/auth-config tells the page (api_auth "cognito"
            # adds where to sign in, infra/stack.py). Both functions get it, as in local mode,
            # where they share one process.
            "IMG2IMG_API_AUTH": config.api_auth,
            "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "POWERTOOLS_LOG_LEVEL": config.log_level,
            # Responses carry images (megabytes of base64): never copy them into trace metadata.
            "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
        }
        if config.bedrock_region:
            common_env["IMG2IMG_BEDROCK_REGION"] = config.bedrock_region
        # Every function of the stack reads its settings from these (the lifecycle watch too).
        self.common_env = dict(common_env)

        self.api = self._function(
            "Api",
            kind="api",
            handler=API_HANDLER,
            code=code,
            memory_mb=config.api_memory_mb,
            timeout_seconds=config.api_timeout_seconds,
            environment={**common_env, MODEL_READ_TIMEOUT: str(config.sync_budget_seconds)},
            description=f"{config.stack_name}: the API door (sync answers, async jobs, uploads)",
            # No more sync model calls in flight than the Bedrock quota admits (infra/config.py),
            # where the environment opts in; the sync route's throttle bounds them in any case.
            reserved_concurrency=config.api_reserved_concurrency if config.api_reserve_concurrency else None,
        )
        self.worker = self._function(
            "Worker",
            kind="worker",
            handler=WORKER_HANDLER,
            code=code,
            memory_mb=config.worker_memory_mb,
            timeout_seconds=config.worker_timeout_seconds,
            environment={
                **common_env,
                MODEL_READ_TIMEOUT: str(config.worker_timeout_seconds - config.sync_margin_seconds),
            },
            description=f"{config.stack_name}: runs queued jobs (S3 door and async API jobs)",
        )

        # What API Gateway and the queue invoke: the `live` alias with SnapStart, else the function.
        self.api_target: lambda_.IFunction = self._live(self.api)
        self.worker_target: lambda_.IFunction = self._live(self.worker)

        inp, out = storage.input_bucket, storage.output_bucket
        # api: reads its callers' sources (api/, uploads/; never inbox/), stores inline sources
        # under api/, signs presigned POSTs to uploads/ (so its role must be able to put
        # there), reads and writes API-door results.
        self._grant_objects(self.api.role, SOURCE_READ_ACTIONS, inp, API_READ_PREFIXES)
        self._grant_objects(self.api.role, ["s3:PutObject"], inp, (API_SOURCES, UPLOADS))
        self._grant_objects(self.api.role, ["s3:GetObject", "s3:PutObject"], out, (API_RESULTS,))
        jobs.table.grant(self.api, *TABLE_ITEM_ACTIONS)
        jobs.queue.grant_send_messages(self.api)
        # worker: reads any source, writes results of both doors and reads them back: a
        # redelivered job finishes from the result an earlier attempt stored (without the read,
        # S3's 403 would look like no result and bill a second call).
        self._grant_objects(self.worker.role, SOURCE_READ_ACTIONS, inp, INPUT_PREFIXES)
        self._grant_objects(
            self.worker.role, ["s3:GetObject", "s3:PutObject"], out, (API_RESULTS, RESULTS, MANIFEST_RESULTS)
        )
        jobs.table.grant(self.worker, *TABLE_ITEM_ACTIONS)
        jobs.queue.grant(self.worker, "sqs:SendMessage")  # a manifest's images (SendMessageBatch)
        # ...and, besides the input bucket's notifications, nobody else may (the queue's policy).
        assert self.api.role is not None and self.worker.role is not None
        jobs.only_these_may_send(
            roles=(self.api.role, self.worker.role),
            notifying_bucket_arn=storage.input_bucket_arn,
            redrivers=config.queue_redrive_principal_arns,
        )
        self.worker_target.add_event_source(
            event_sources.SqsEventSource(
                jobs.queue,
                batch_size=config.worker_batch_size,
                report_batch_item_failures=True,
                max_concurrency=config.worker_max_concurrency,
            )
        )

        for function, invoked_by in (
            (self.api, "by API Gateway's Lambda proxy integration"),
            (self.worker, "by the SQS event source mapping"),
        ):
            skip_check(function, "CKV_AWS_116", SYNC_INVOCATION_NO_DLQ.format(by=invoked_by))
            skip_check(function, "CKV_AWS_117", NO_VPC)
            skip_check(function, "CKV_AWS_173", PLAIN_ENVIRONMENT)
        skip_check(
            self.worker,
            "CKV_AWS_115",
            "The worker's concurrency is capped by its SQS event source mapping's MaximumConcurrency "
            "(worker_max_concurrency, at most the Bedrock quota); reserving concurrency as well would "
            "only withhold capacity from the rest of the account.",
        )
        if not config.api_reserve_concurrency:
            skip_check(
                self.api,
                "CKV_AWS_115",
                "A new account refuses a reservation (Lambda keeps 100 unreserved; the limit may be 10): "
                "the sync route's throttle bounds concurrent model calls; api_reserve_concurrency opts in.",
            )

        self.model_grants = model_grants(config, stack.partition, stack.account)
        for function in (self.api, self.worker):
            self._grant_models(function)

        # One finding per prefix-scoped object ARN: name each, say why it is as narrow as it gets.
        for function, grants in (
            (self.api, [(inp, API_READ_PREFIXES), (out, (API_RESULTS,))]),
            (self.worker, [(inp, INPUT_PREFIXES), (out, (API_RESULTS, RESULTS, MANIFEST_RESULTS))]),
        ):
            for bucket, prefixes in grants:
                for prefix in prefixes:
                    acknowledge(
                        function.role,  # type: ignore[arg-type]
                        "AwsSolutions-IAM5",
                        f"Object ARNs under the '{prefix}' prefix of the {bucket.node.id}: an S3 "
                        "prefix can only be named with a trailing wildcard, and the actions are "
                        "limited to the object reads/writes this function performs there.",
                        finding=f"Resource::<{stack.get_logical_id(bucket.node.default_child)}.Arn>/{prefix}*",  # type: ignore[arg-type]
                    )
            acknowledge(function.role, "AwsSolutions-IAM5", XRAY_REASON, finding="Resource::*")  # type: ignore[arg-type]
            for grant in self.model_grants:
                if grant.routed_model_arn:
                    acknowledge(
                        function.role,  # type: ignore[arg-type]
                        "AwsSolutions-IAM5",
                        f"Inference profile {grant.model_id} routes calls to its model in regions "
                        "Bedrock chooses per call; the region is a wildcard but the statement only "
                        "allows calls made through this profile (bedrock:InferenceProfileArn condition).",
                        finding=f"Resource::{grant.routed_model_arn}",
                    )

    def _function(
        self,
        construct_id: str,
        *,
        kind: str,
        handler: str,
        code: lambda_.Code,
        memory_mb: int,
        timeout_seconds: int,
        environment: dict[str, str],
        description: str,
        reserved_concurrency: int | None = None,
    ) -> lambda_.Function:
        config = self._config
        function_name = f"{config.stack_name}-{kind}"
        log_group = logs.LogGroup(
            self,
            f"{construct_id}LogGroup",
            log_group_name=f"/aws/lambda/{function_name}",
            retention=LOG_RETENTION[config.log_retention_days],
            removal_policy=removal_policy(config),
        )
        skip_check(log_group, "CKV_AWS_158", LOG_GROUP_DEFAULT_ENCRYPTION)
        role = iam.Role(
            self,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{function_name}: least privilege for the {kind} function",
        )
        log_group.grant_write(role)
        function = lambda_.Function(
            self,
            construct_id,
            function_name=function_name,
            description=description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=handler,
            code=code,
            memory_size=memory_mb,
            timeout=Duration.seconds(timeout_seconds),
            role=role,
            log_group=log_group,
            tracing=lambda_.Tracing.ACTIVE,
            environment=environment,
            reserved_concurrent_executions=reserved_concurrency,
            # SnapStart takes Python 3.12+ managed runtimes and no EFS, no provisioned concurrency
            # and no ephemeral storage above 512 MB: none of them is used here (tests/infra).
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if config.snapstart else None,
            # A replaced version is deleted, so only the live snapshot accrues the cache charge.
            current_version_options=(
                lambda_.VersionOptions(removal_policy=RemovalPolicy.DESTROY) if config.snapstart else None
            ),
        )
        # CDK makes the function depend on the role and its policy; the role is already a GetAtt
        # (cfn-lint W3005). Keep only the policy: the function (and the queue's event source
        # mapping) must not exist before the permissions it runs with.
        acknowledge(function, "AwsSolutions-L1", RUNTIME_REASON)
        policy = role.node.find_child("DefaultPolicy").node.default_child
        cfn_function = function.node.default_child
        assert isinstance(policy, iam.CfnPolicy) and isinstance(cfn_function, lambda_.CfnFunction)
        cfn_function.add_override("DependsOn", [Stack.of(self).get_logical_id(policy)])
        return function

    def _live(self, function: lambda_.Function) -> lambda_.IFunction:
        """With SnapStart, the `live` alias on the function's current (snapshotted) version."""
        if not self._config.snapstart:
            return function
        return lambda_.Alias(
            self, f"{function.node.id}Live", alias_name=LIVE_ALIAS, version=function.current_version
        )

    @staticmethod
    def _grant_objects(
        role: iam.IRole | None, actions: list[str], bucket: s3.IBucket, prefixes: tuple[str, ...]
    ) -> None:
        assert role is not None
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=actions, resources=[bucket.arn_for_objects(f"{p}*") for p in prefixes]
            )
        )

    def _grant_models(self, function: lambda_.Function) -> None:
        assert function.role is not None
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["bedrock:InvokeModel"],
                resources=[arn for grant in self.model_grants for arn in grant.resources],
            )
        )
        for grant in self.model_grants:
            if grant.routed_model_arn and grant.profile_arn:
                function.add_to_role_policy(
                    iam.PolicyStatement(
                        actions=["bedrock:InvokeModel"],
                        resources=[grant.routed_model_arn],
                        conditions={"StringEquals": {"bedrock:InferenceProfileArn": grant.profile_arn}},
                    )
                )
