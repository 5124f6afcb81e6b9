"""The API door: a regional REST API, every route a Lambda proxy to the api function, every
method behind the configured auth (SigV4, an API key, or a user pool user's ID token; with the
latter, what a browser loads before signing in is open), with request validation, stage
throttling, JSON access logs, execution logs (errors), detailed metrics and X-Ray tracing."""

from __future__ import annotations

import json

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from img2img import vocabulary
from img2img.domain.request import MAX_PROMPT_CHARS, MAX_PROMPTS
from infra.checkov import LOG_GROUP_DEFAULT_ENCRYPTION, skip_check
from infra.config import EnvironmentConfig
from infra.functions import LOG_RETENTION
from infra.nag import acknowledge
from infra.removal import removal_policy

# Every route (img2img/vocabulary.py; "/" is the page) reaches the api function.
ROUTES = vocabulary.ROUTES
SYNC_ROUTE = vocabulary.SYNC


def sync_method_path() -> str:
    """The sync route as a stage's method_options key: `<resource path>/<HTTP method>`."""
    method, path = SYNC_ROUTE
    return f"{path}/{method}"


# Request bodies API Gateway checks before invoking the function (the function validates the
# SDXL contract in full; the gateway only turns away what cannot be a request at all).
IMAGE_REQUEST_ROUTES = set(vocabulary.IMAGE_REQUEST_ROUTES)
JSON_OBJECT_ROUTES = {vocabulary.UPLOAD}

ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "extendedRequestId": "$context.extendedRequestId",
    "requestTime": "$context.requestTime",
    "ip": "$context.identity.sourceIp",
    "userAgent": "$context.identity.userAgent",
    "caller": "$context.identity.caller",
    "userArn": "$context.identity.userArn",
    "apiKeyId": "$context.identity.apiKeyId",
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "integrationStatus": "$context.integration.status",
    "errorType": "$context.error.responseType",
    "xrayTraceId": "$context.xrayTraceId",
}
# The error message last, unquoted: $context.error.messageString is the message already quoted
# and escaped by API Gateway, so a quote in it cannot break the line's JSON ("The quoted value of
# $context.error.message", https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-variables-for-access-logging.html).
ACCESS_LOG_FORMAT = json.dumps(ACCESS_LOG_FIELDS)[:-1] + ', "errorMessage": $context.error.messageString}'
# Gateway-made errors (bad body, missing auth, throttled...) in the function's error shape.
ERROR_TEMPLATE = (
    '{"error": {"code": "$context.error.responseType", '
    '"message": $context.error.messageString, "details": []}}'
)
# api_auth "cognito": a missing, expired or foreign token. API Gateway's own body for it is
# {"message":"Unauthorized"}; here its message goes into the service's one error shape, with the
# service's lower-case code (local/api_front.py answers the same).
UNAUTHORIZED_CODE = "unauthorized"
UNAUTHORIZED_TEMPLATE = (
    '{"error": {"code": "' + UNAUTHORIZED_CODE + '", "message": $context.error.messageString, "details": []}}'
)
OPEN_ROUTES = set(vocabulary.OPEN_ROUTES)


class Api(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        handler: lambda_.IFunction,
        user_pool: cognito.IUserPool | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        if (config.api_auth == "cognito") != (user_pool is not None):
            raise ValueError("api_auth 'cognito' takes a user pool, and only it")
        self.stage_name = config.name
        self.access_log_group = logs.LogGroup(
            self,
            "AccessLogs",
            log_group_name=f"/img2img/{config.name}/api-access",
            retention=LOG_RETENTION[config.log_retention_days],
            removal_policy=removal_policy(config),
        )
        self.rest_api = apigw.RestApi(
            self,
            "RestApi",
            rest_api_name=config.stack_name,
            description=f"img2img ({config.name}): Stability SDXL 1.0 image-to-image on Amazon Bedrock",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=config.api_cloudwatch_role,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN if config.api_cloudwatch_role else None,
            deploy_options=apigw.StageOptions(
                stage_name=self.stage_name,
                throttling_rate_limit=config.api_throttle_rate_limit,
                throttling_burst_limit=config.api_throttle_burst_limit,
                tracing_enabled=True,
                metrics_enabled=True,  # per-method metrics: the sync latency alarm needs them
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # request bodies hold images and prompts: never log them
                access_log_destination=apigw.LogGroupLogDestination(self.access_log_group),
                access_log_format=apigw.AccessLogFormat.custom(ACCESS_LOG_FORMAT),
                method_options={sync_method_path(): self._sync_method_options()},
            ),
        )
        self.rest_api.node.try_remove_child("Endpoint")  # the stack's ApiUrl output replaces it

        validator = self.rest_api.add_request_validator(
            "RequestValidator",
            request_validator_name=f"{config.stack_name}-body-and-parameters",
            validate_request_body=True,
            validate_request_parameters=True,
        )
        json_object = self.rest_api.add_model(
            "JsonObjectModel",
            model_name="JsonObject",
            content_type="application/json",
            schema=apigw.JsonSchema(
                schema=apigw.JsonSchemaVersion.DRAFT4, title="JsonObject", type=apigw.JsonSchemaType.OBJECT
            ),
        )
        image_request = self.rest_api.add_model(
            "ImageToImageRequestModel",
            model_name="ImageToImageRequest",
            content_type="application/json",
            schema=apigw.JsonSchema(
                schema=apigw.JsonSchemaVersion.DRAFT4,
                title="ImageToImageRequest",
                description="Stability SDXL 1.0 image-to-image body (checked in full by the function)",
                type=apigw.JsonSchemaType.OBJECT,
                required=["text_prompts"],
                properties={
                    # The same caps as the function's request model (domain/request.py), so a
                    # body past them never reaches (or bills) the function.
                    "text_prompts": apigw.JsonSchema(
                        type=apigw.JsonSchemaType.ARRAY,
                        min_items=1,
                        max_items=MAX_PROMPTS,
                        items=apigw.JsonSchema(
                            type=apigw.JsonSchemaType.OBJECT,
                            required=["text"],
                            properties={
                                "text": apigw.JsonSchema(
                                    type=apigw.JsonSchemaType.STRING, max_length=MAX_PROMPT_CHARS
                                ),
                                "weight": apigw.JsonSchema(type=apigw.JsonSchemaType.NUMBER),
                            },
                        ),
                    ),
                    "extras": apigw.JsonSchema(type=apigw.JsonSchemaType.OBJECT),
                },
            ),
        )

        for response_type in (
            apigw.ResponseType.BAD_REQUEST_BODY,
            apigw.ResponseType.BAD_REQUEST_PARAMETERS,
            apigw.ResponseType.DEFAULT_4_XX,
            apigw.ResponseType.DEFAULT_5_XX,
        ):
            self.rest_api.add_gateway_response(
                f"{response_type.response_type}Response",
                type=response_type,
                templates={"application/json": ERROR_TEMPLATE},
            )
        self.authorizer: apigw.CognitoUserPoolsAuthorizer | None = None
        if user_pool is not None:
            # The ID token, as sent in Authorization; no scopes on the methods, so API Gateway
            # takes ID tokens (with scopes it would want access tokens).
            self.authorizer = apigw.CognitoUserPoolsAuthorizer(
                self,
                "UserPoolAuthorizer",
                cognito_user_pools=[user_pool],
                authorizer_name=f"{config.stack_name}-users",
                identity_source=apigw.IdentitySource.header(vocabulary.AUTHORIZATION_HEADER),
            )
            self.rest_api.add_gateway_response(
                "UnauthorizedResponse",
                type=apigw.ResponseType.UNAUTHORIZED,
                templates={"application/json": UNAUTHORIZED_TEMPLATE},
            )

        # One integration for every route; its timeout is the api function's: the function
        # answers (within its sync budget) before API Gateway would give up on it.
        integration = apigw.LambdaIntegration(
            handler,
            proxy=True,
            allow_test_invoke=False,
            timeout=Duration.seconds(config.api_timeout_seconds),
        )
        self.methods: dict[tuple[str, str], apigw.Method] = {}
        for http_method, path in ROUTES:
            resource = self.rest_api.root.resource_for_path(path)
            models: dict[str, apigw.IModel] | None = None
            if (http_method, path) in IMAGE_REQUEST_ROUTES:
                models = {"application/json": image_request}
            elif (http_method, path) in JSON_OBJECT_ROUTES:
                models = {"application/json": json_object}
            parameters = {"method.request.path.job_id": True} if "{job_id}" in path else None
            self.methods[(http_method, path)] = resource.add_method(
                http_method,
                integration,
                request_validator=validator,
                request_models=models,
                request_parameters=parameters,
                **self._auth_options((http_method, path)),  # type: ignore[arg-type]
            )

        self.api_key: apigw.IApiKey | None = None
        if config.api_auth == "api_key":
            plan = self.rest_api.add_usage_plan(
                "UsagePlan",
                name=f"{config.stack_name}-usage-plan",
                description="Per-key throttle (and optional daily quota) for API-key callers",
                throttle=apigw.ThrottleSettings(
                    rate_limit=config.api_throttle_rate_limit, burst_limit=config.api_throttle_burst_limit
                ),
                quota=(
                    apigw.QuotaSettings(limit=config.api_key_quota_per_day, period=apigw.Period.DAY)
                    if config.api_key_quota_per_day
                    else None
                ),
            )
            plan.add_api_stage(stage=self.rest_api.deployment_stage)
            # One key per caller (api_key_callers): the plan's throttle and quota apply per key.
            keys = [
                self.rest_api.add_api_key(
                    "ApiKey" if i == 0 else f"ApiKey-{caller}", api_key_name=f"{config.stack_name}-{caller}"
                )
                for i, caller in enumerate(config.api_key_callers)
            ]
            for key in keys:
                plan.add_api_key(key)
            self.api_key = keys[0]

        self._acknowledge()

    def _sync_method_options(self) -> apigw.MethodDeploymentOptions:
        """The sync route makes one Bedrock call per request: its throttle is the model quota
        (infra/config.py derives it), for all callers together, below the stage's. A method
        setting replaces the stage's `*/*` one for that method, so logging and metrics are
        repeated (the sync latency alarm reads this method's metrics)."""
        return apigw.MethodDeploymentOptions(
            throttling_rate_limit=self.config.sync_throttle_rate_limit,
            throttling_burst_limit=self.config.sync_throttle_burst_limit,
            logging_level=apigw.MethodLoggingLevel.ERROR,
            data_trace_enabled=False,
            metrics_enabled=True,
        )

    def _auth_options(self, route: tuple[str, str]) -> dict[str, object]:
        if self.config.api_auth == "iam":
            return {"authorization_type": apigw.AuthorizationType.IAM}
        if self.config.api_auth == "api_key":
            return {"authorization_type": apigw.AuthorizationType.NONE, "api_key_required": True}
        if route in OPEN_ROUTES:  # what a browser loads before signing in
            return {"authorization_type": apigw.AuthorizationType.NONE}
        return {"authorization_type": apigw.AuthorizationType.COGNITO, "authorizer": self.authorizer}

    @staticmethod
    def _acknowledge_open(method: apigw.Method, route: str) -> None:
        why = (
            f"{route} is what a browser loads before anyone signs in (api_auth 'cognito'): the page, "
            "the docs page and spec, or the page's sign-in settings; it holds no caller's data, "
            "starts no work, and every route that does needs the user's ID token."
        )
        acknowledge(method, "AwsSolutions-APIG4", why)
        acknowledge(method, "AwsSolutions-COG4", why)

    def _acknowledge(self) -> None:
        skip_check(self.access_log_group, "CKV_AWS_158", LOG_GROUP_DEFAULT_ENCRYPTION)
        skip_check(
            self.rest_api.deployment_stage,
            "CKV_AWS_120",
            "No response cache: every POST generates a new image and job status must be read "
            "fresh; a cache would serve stale job states and bills per hour for nothing.",
        )
        acknowledge(
            self.rest_api.deployment_stage,
            "AwsSolutions-APIG3",
            "No WAF web ACL: every method that does work requires SigV4, an API key or a user's token and "
            "is throttled per "
            "stage (and per key); a web ACL costs per month and per request, so it is left to "
            "accounts that front their APIs with a shared WAF policy.",
        )
        for (http_method, path), method in self.methods.items():
            if self.config.api_auth == "cognito":
                if (http_method, path) in OPEN_ROUTES:
                    self._acknowledge_open(method, f"{http_method} {path}")
                continue
            acknowledge(
                method,
                "AwsSolutions-COG4",
                f"{http_method} {path} is authorized by "
                + (
                    "AWS IAM (SigV4): callers are AWS principals, not Cognito users."
                    if self.config.api_auth == "iam"
                    else "an API key in a usage plan, as this environment's api_auth says."
                ),
            )
            if self.config.api_auth == "api_key":
                acknowledge(
                    method,
                    "AwsSolutions-APIG4",
                    f"{http_method} {path} requires an API key (api_auth 'api_key' in cdk.json): callers "
                    "outside AWS get a key and a usage plan instead of SigV4; use api_auth 'iam' "
                    "where callers can sign.",
                )
        if self.config.api_cloudwatch_role:
            role = self.rest_api.node.try_find_child("CloudWatchRole")
            if role is not None:
                acknowledge(
                    role,
                    "AwsSolutions-IAM4",
                    "The account-level role API Gateway uses to write execution logs to CloudWatch "
                    "Logs; AWS's managed policy is the documented grant for it, and it names no "
                    "resource of this stack.",
                    finding="Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs",
                )
