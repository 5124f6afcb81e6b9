"""One environment's copy of img2img: storage, jobs, functions, API and monitoring, and the
outputs the README, the e2e suite and operators rely on (their names are stable)."""

from __future__ import annotations

from aws_cdk import CfnOutput, Environment, Stack, Tags
from constructs import Construct

from infra.api import Api
from infra.asset import Asset
from infra.config import EnvironmentConfig
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
        self.api = Api(self, "Api", config=config, handler=self.functions.api_target)
        self.monitoring = Monitoring(
            self, "Monitoring", config=config, functions=self.functions, jobs=self.jobs, api=self.api
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
            "JobsTableName": (self.jobs.table.table_name, "Job and idempotency records"),
            "DashboardUrl": (
                f"https://{config.region}.console.aws.amazon.com/cloudwatch/home?region={config.region}"
                f"#dashboards:name={config.stack_name}",
                "CloudWatch dashboard",
            ),
            "ApiAuthMode": (config.api_auth, "How to call the API: iam (SigV4) or api_key (x-api-key)"),
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
