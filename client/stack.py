"""Where the service is: a deployed stack found by its CloudFormation outputs (`--env NAME`, in
the region cdk.json gives the environment unless --region says otherwise), an API URL
(`--endpoint URL`), or local mode on this machine (`--local`). Answers a Target that makes the
API client and the S3 client each command needs."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any, Literal

import boto3
import botocore.exceptions
from botocore.config import Config

from img2img_client.api import Img2ImgApi, SigV4, region_of_execute_api
from img2img_client.cdk_config import configured_region
from img2img_client.errors import (
    CREDENTIALS_FIX,
    ClientError,
    ConfigurationError,
    Unreachable,
    UsageError,
    from_aws,
)

STACK_PREFIX = "Img2Img"
OUTPUT_API_URL = "ApiUrl"
OUTPUT_INPUT_BUCKET = "InputBucketName"
OUTPUT_OUTPUT_BUCKET = "OutputBucketName"
OUTPUT_AUTH_MODE = "ApiAuthMode"
OUTPUT_API_KEY_ID = "ApiKeyId"
REQUIRED_OUTPUTS = (OUTPUT_API_URL, OUTPUT_INPUT_BUCKET, OUTPUT_OUTPUT_BUCKET)
API_KEY_ENV = "IMG2IMG_API_KEY"
ENDPOINT_ENV = "IMG2IMG_ENDPOINT"

Auth = Literal["iam", "api_key", "none"]
AuthChoice = Literal["auto", "iam", "api-key", "none"]
_AUTH_CHOICES: dict[str, Auth] = {"iam": "iam", "api-key": "api_key", "none": "none"}


@dataclass(frozen=True)
class TargetOptions:
    """The command-line options that say where the service is and how to call it."""

    env: str | None = None
    endpoint: str | None = None
    local: bool = False
    region: str | None = None
    profile: str | None = None
    api_key: str | None = None
    auth: AuthChoice = "auto"
    s3_endpoint: str | None = None
    input_bucket: str | None = None
    output_bucket: str | None = None


@dataclass(frozen=True)
class Target:
    api_url: str | None
    auth: Auth
    region: str | None
    api_key: str | None = None
    input_bucket: str | None = None
    output_bucket: str | None = None
    s3_endpoint: str | None = None
    stack_name: str | None = None
    profile: str | None = None
    static_credentials: tuple[str, str] | None = None  # local mode's dummy keys
    local: bool = False

    def session(self) -> boto3.Session:
        if self.static_credentials:
            key, secret = self.static_credentials
            return boto3.Session(aws_access_key_id=key, aws_secret_access_key=secret, region_name=self.region)
        return aws_session(self.profile, self.region)

    def api(self) -> Img2ImgApi:
        if not self.api_url:
            raise UsageError("no API here: give --env NAME, --endpoint URL or --local")
        auth = None
        if self.auth == "iam":
            credentials = self.session().get_credentials()
            if credentials is None:
                raise ConfigurationError(
                    f"the API uses IAM auth but no AWS credentials were found: {CREDENTIALS_FIX}",
                    code="credentials",
                    problem="credentials",
                )
            region = region_of_execute_api(self.api_url) or self.region
            if not region:
                raise UsageError("cannot tell the API's region for SigV4: pass --region")
            auth = SigV4(credentials, region)
        elif self.auth == "api_key" and not self.api_key:
            raise ConfigurationError(f"the API wants an API key: pass --api-key or set {API_KEY_ENV}")
        return Img2ImgApi(self.api_url, auth=auth, api_key=self.api_key if self.auth == "api_key" else None)

    def s3(self) -> Any:
        config = Config(retries={"max_attempts": 5, "mode": "standard"}, s3={"addressing_style": "path"})
        return self.session().client("s3", endpoint_url=self.s3_endpoint, config=config)

    def buckets(self) -> tuple[str, str]:
        if not self.input_bucket or not self.output_bucket:
            raise UsageError(
                "the S3 door needs the buckets: "
                "give --env NAME, --local, or --input-bucket and --output-bucket"
            )
        return self.input_bucket, self.output_bucket


def aws_session(profile: str | None, region: str | None) -> boto3.Session:
    try:
        return boto3.Session(profile_name=profile, region_name=region)
    except botocore.exceptions.ProfileNotFound as exc:
        raise ConfigurationError(
            f"no AWS profile {profile!r}: check ~/.aws/config or --profile", problem="configuration"
        ) from exc


def stack_name(env: str) -> str:
    return f"{STACK_PREFIX}-{env}"


def env_of(name: str) -> str:
    return name.removeprefix(f"{STACK_PREFIX}-")


def local_target() -> Target:
    """Local mode's defaults (local/resources.py), ports as `make local` reads them."""
    from img2img_local import resources as r

    api_port = os.environ.get(r.API_PORT_ENV, str(r.DEFAULT_API_PORT))
    aws_port = os.environ.get(r.AWS_PORT_ENV, str(r.DEFAULT_AWS_PORT))
    return Target(
        api_url=f"http://{r.DEFAULT_HOST}:{api_port}",
        auth="none",
        region=r.REGION,
        input_bucket=r.INPUT_BUCKET,
        output_bucket=r.OUTPUT_BUCKET,
        s3_endpoint=f"http://{r.DEFAULT_HOST}:{aws_port}",
        static_credentials=("testing", "testing"),
        local=True,
    )


def stack_outputs(cloudformation: Any, name: str) -> tuple[str, dict[str, str]]:
    """(stack status, {output key: value}). Raises ConfigurationError if there is no such stack."""
    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        if "does not exist" in str(error.get("Message", "")):
            region = cloudformation.meta.region_name
            raise ConfigurationError(
                f"no stack {name} in {region}: deploy it (make deploy ENV={env_of(name)}) or pass --region",
                code="no_stack",
                problem="configuration",
            ) from exc
        raise _as_configuration(from_aws(f"cannot read stack {name}", exc)) from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise _as_configuration(from_aws(f"cannot read stack {name}", exc)) from exc
    if not stacks:
        raise ConfigurationError(f"no stack {name}", code="no_stack", problem="configuration")
    stack = stacks[0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}
    return str(stack.get("StackStatus", "")), outputs


def api_key_value(apigateway: Any, key_id: str) -> str:
    try:
        value = apigateway.get_api_key(apiKey=key_id, includeValue=True).get("value")
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        failure = from_aws(f"reading API key {key_id}", exc)
        raise ConfigurationError(
            f"the API wants an API key and {failure.message}: pass --api-key or set {API_KEY_ENV}",
            code=failure.code,
            problem=failure.problem,
        ) from exc
    if not value:
        raise ConfigurationError(f"API key {key_id} has no value: pass --api-key or set {API_KEY_ENV}")
    return str(value)


def stack_target(options: TargetOptions, session: boto3.Session | None = None) -> Target:
    """The deployed stack `Img2Img-<env>`, found by its outputs in --region, else in the region
    cdk.json gives the environment, else in the AWS configuration's."""
    assert options.env
    session = session or aws_session(options.profile, options.region or configured_region(options.env))
    region = session.region_name
    if not region:
        raise ConfigurationError(
            f"no AWS region: cdk.json names no environment {options.env!r}; pass --region or set "
            "AWS_REGION / AWS_DEFAULT_REGION",
            problem="configuration",
        )
    name = stack_name(options.env)
    status, outputs = stack_outputs(session.client("cloudformation"), name)
    missing = [key for key in REQUIRED_OUTPUTS if not outputs.get(key)]
    if missing:
        raise ConfigurationError(
            f"stack {name} ({status}) lacks the outputs {', '.join(missing)}: "
            f"redeploy it (make deploy ENV={options.env})",
            problem="configuration",
        )
    mode = outputs.get(OUTPUT_AUTH_MODE, "iam")
    auth: Auth = "api_key" if mode == "api_key" else "iam"
    api_key = options.api_key
    if auth == "api_key" and not api_key and outputs.get(OUTPUT_API_KEY_ID):
        api_key = api_key_value(session.client("apigateway"), outputs[OUTPUT_API_KEY_ID])
    return Target(
        api_url=outputs[OUTPUT_API_URL],
        auth=auth,
        region=region,
        api_key=api_key,
        input_bucket=outputs[OUTPUT_INPUT_BUCKET],
        output_bucket=outputs[OUTPUT_OUTPUT_BUCKET],
        stack_name=name,
        profile=options.profile,
    )


def resolve_target(options: TargetOptions, session: boto3.Session | None = None) -> Target:
    """--local, --env or --endpoint (or $IMG2IMG_ENDPOINT), then the explicit overrides."""
    chosen = [flag for flag, given in (("--local", options.local), ("--env", options.env)) if given]
    if len(chosen) > 1:
        raise UsageError("give one of --local or --env")
    api_key = options.api_key or os.environ.get(API_KEY_ENV) or None
    options = replace(options, api_key=api_key)
    if options.local:
        target = local_target()
    elif options.env:
        target = stack_target(options, session)
    else:
        endpoint = options.endpoint or os.environ.get(ENDPOINT_ENV)
        if not endpoint and not (options.input_bucket and options.output_bucket):
            raise UsageError(
                f"say where the service is: --env NAME, --endpoint URL or --local (or set {ENDPOINT_ENV})"
            )
        target = Target(
            api_url=endpoint,
            auth="none",
            region=options.region or (region_of_execute_api(endpoint) if endpoint else None),
            profile=options.profile,
        )
        if endpoint:
            target = replace(target, auth=_auto_auth(endpoint, api_key))
    if options.endpoint:
        target = replace(target, api_url=options.endpoint)
    if options.auth != "auto":
        target = replace(target, auth=_AUTH_CHOICES[options.auth])
    return replace(
        target,
        api_key=api_key or target.api_key,
        s3_endpoint=options.s3_endpoint or target.s3_endpoint,
        input_bucket=options.input_bucket or target.input_bucket,
        output_bucket=options.output_bucket or target.output_bucket,
        region=options.region or target.region,
    )


def _auto_auth(endpoint: str, api_key: str | None) -> Auth:
    if api_key:
        return "api_key"
    if region_of_execute_api(endpoint):
        return "iam"  # the stack's default; a key-mode deployment needs --api-key anyway
    return "none"


def _as_configuration(error: ClientError) -> ClientError:
    """Reading the stack failed: a network problem is one (exit 6), every other reason is a
    configuration failure (exit 5) that keeps its problem (credentials, access) and code."""
    if isinstance(error, ConfigurationError | Unreachable):
        return error
    return ConfigurationError(error.message, code=error.code, problem=error.problem)
