"""One environment's copy of img2img: storage, jobs, functions, API and monitoring, and the
outputs the README, the e2e suite and operators rely on (their names are stable)."""

from __future__ import annotations

from aws_cdk import CfnOutput, Environment, Stack, Tags
from constructs import Construct

from infra.api import Api
from infra.asset import Asset
from infra.auth import SignIn, page_origin
from infra.config import EnvironmentConfig
from infra.events import JobEvents
from infra.functions import Functions
from infra.jobs import Jobs
from infra.lifecycle import LifecycleWatch
from infra.monitoring import Monitoring
from infra.storage import Storage

OUTPUT_NAMES = (
    "ApiUrl",
    "InputBucketName",
    "OutputBucketName",
    "QueueUrl",
    "DeadLetterQueueUrl",
    "JobsTableName",
    "DashboardUrl",
    "ApiAuthMode",
)


class Img2ImgStack(Stack):
    def __init__(self, scope: Construct, *, config: EnvironmentConfig, code_asset: Asset) -> None:
        super().__init__(
            scope,
            config.stack_name,
            stack_name=config.stack_name,
            description=f"img2img ({config.name}): Stability SDXL 1.0 image-to-image on Amazon Bedrock",
            # Region from cdk.json; the account too when given, else whatever the credentials say.
            env=Environment(account=config.account, region=config.region),
            termination_protection=not config.destroy_on_delete,
        )
        self.config = config
        for key, value in {"project": "img2img", "environment": config.name, **config.tags}.items():
            Tags.of(self).add(key, value)

        self.jobs = Jobs(self, "Jobs", config=config)
        self.storage = Storage(self, "Storage", config=config, queue=self.jobs.queue)
        self.functions = Functions(
            self, "Functions", config=config, storage=self.storage, jobs=self.jobs, code_asset=code_asset
        )
        self.sign_in = SignIn(self, "SignIn", config=config) if config.api_auth == "cognito" else None
        self.api = Api(
            self,
            "Api",
            config=config,
            handler=self.functions.api_target,
            user_pool=self.sign_in.user_pool if self.sign_in else None,
        )
        # GET /v1/auth-config tells the page where this stack signs users in.
        if self.sign_in is not None:
            api_id = self.api.rest_api.rest_api_id
            self.sign_in.add_page_client(api_id)
            for name, value in self.sign_in.page_environment(api_id).items():
                self.functions.api.add_environment(name, value)
            # The page uploads large sources with a presigned POST and reads each job's metadata
            # JSON from a presigned GET: cross-origin requests to S3, allowed from the page's
            # own origin only. The API itself needs no CORS: the page is served by it.
            self.storage.allow_page(page_origin(api_id))
            self.sign_in.acknowledge_findings()
        self.monitoring = Monitoring(
            self, "Monitoring", config=config, functions=self.functions, jobs=self.jobs, api=self.api
        )
        self.job_events = JobEvents(
            self, "JobEvents", config=config, functions=self.functions, monitoring=self.monitoring
        )
        self.lifecycle = LifecycleWatch(
            self,
            "LifecycleWatch",
            config=config,
            functions=self.functions,
            monitoring=self.monitoring,
        )

        outputs = {
            "ApiUrl": (self.api.rest_api.url, "Base URL of the API stage (routes are under v1/)"),
            "InputBucketName": (self.storage.input_bucket.bucket_name, "Drop images under inbox/ here"),
            "OutputBucketName": (
                self.storage.output_bucket.bucket_name,
                "Results: jobs/ (API) and results/ (S3 door)",
            ),
            "QueueUrl": (self.jobs.queue.queue_url, "The worker's queue"),
            "DeadLetterQueueUrl": (self.jobs.dead_letter_queue.queue_url, "Jobs that failed every delivery"),
            "JobsTableName": (self.jobs.table.table_name, "Job records"),
            "DashboardUrl": (
                f"https://{config.region}.console.aws.amazon.com/cloudwatch/home?region={config.region}"
                f"#dashboards:name={config.stack_name}",
                "CloudWatch dashboard",
            ),
            "ApiAuthMode": (
                config.api_auth,
                "How to call the API: iam (SigV4), api_key (x-api-key) or cognito (a user's ID token)",
            ),
        }
        assert tuple(outputs) == OUTPUT_NAMES
        for name, (value, description) in outputs.items():
            CfnOutput(self, name, value=value, description=description)
        if self.api.api_key is not None:
            CfnOutput(
                self,
                "ApiKeyId",
                value=self.api.api_key.key_id,
                description="aws apigateway get-api-key --include-value --api-key <this> gives the key",
            )
        if self.sign_in is not None:
            assert self.sign_in.client is not None
            for name, value, description in (
                (
                    "UserPoolId",
                    self.sign_in.user_pool.user_pool_id,
                    "aws cognito-idp admin-create-user --user-pool-id <this>",
                ),
                (
                    "UserPoolClientId",
                    self.sign_in.client.user_pool_client_id,
                    "The page's app client (public, code grant with PKCE)",
                ),
                ("SignInUrl", self.sign_in.base_url, "The user pool's managed login domain"),
                ("PageUrl", self.api.rest_api.url, "The page: sign in, upload, generate"),
            ):
                CfnOutput(self, name, value=value, description=description)
