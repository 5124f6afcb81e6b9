"""`img2img doctor` and `make deploy`'s preflight: checks, in order, what a deploy and a run need,
and says what to fix.

With --env: what cdk.json says about the environment (its region, Bedrock region and models,
read by infra/config.py's own rules), AWS credentials, then the account (the preflight): CDK
bootstrap, Lambda concurrency against what the stack reserves, API Gateway's CloudWatch role;
then the stack and its outputs and the API (health, models) unless --preflight; then for each
model the deployment uses or cdk.json configures: that Bedrock offers it in the model region,
that it is ACTIVE (not LEGACY, not end of life) and that this account may invoke it
(GetFoundationModelAvailability), and the account's on-demand quota for the default model
against bedrock_requests_per_minute. With --endpoint or --local only the API checks apply
(local mode's Bedrock is an emulator). Every failure names its kind of problem (network,
credentials, access, lifecycle or configuration) and the command that fixes it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import botocore.exceptions

from img2img.catalog import base_model_id, retirement
from img2img_client.api import Img2ImgApi
from img2img_client.cdk_config import Configured, NotConfigured
from img2img_client.errors import CONFIGURATION, CREDENTIALS_FIX, ClientError, Problem, problem_of
from img2img_client.stack import (
    OUTPUT_API_KEY_ID,
    OUTPUT_API_URL,
    OUTPUT_AUTH_MODE,
    REQUIRED_OUTPUTS,
    Target,
    api_key_value,
    stack_name,
    stack_outputs,
)

Verdict = Literal["ok", "warn", "fail", "skip"]
Role = Literal["default", "allowed", "fallback", "extra"]
ClientFactory = Callable[..., Any]  # (service, region_name=...) -> a boto3 client
ApiFactory = Callable[[Target], Img2ImgApi]
NETWORK_FIX = "check your network connection, proxy or VPN, and that the region is right"
# `cdk bootstrap` writes its template's version here (the default qualifier, which cdk.json keeps).
# https://docs.aws.amazon.com/cdk/v2/guide/bootstrapping-env.html
BOOTSTRAP_VERSION_PARAMETER = "/cdk-bootstrap/hnb659fds/version"
# Lambda keeps at least this many executions unreserved: a reservation that would leave fewer is
# refused. https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html
LAMBDA_MIN_UNRESERVED = 100
LAMBDA_CONCURRENCY_QUOTA = "L-B99A9384"  # Service Quotas' "Concurrent executions" for lambda


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    detail: str
    fix: str = ""
    problem: Problem | None = None


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    def add(
        self, name: str, verdict: Verdict, detail: str, fix: str = "", problem: Problem | None = None
    ) -> Check:
        check = Check(name, verdict, detail, fix, problem)
        self.checks.append(check)
        return check

    @property
    def ok(self) -> bool:
        return not any(c.verdict == "fail" for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [asdict(c) for c in self.checks]}

    def render(self) -> str:
        marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}
        lines = []
        for check in self.checks:
            kind = f"{check.problem} problem: " if check.problem else ""
            lines.append(f"[{marks[check.verdict]}] {check.name}: {kind}{check.detail}")
            if check.fix:
                lines.append(f"       fix: {check.fix}")
        failed = sum(c.verdict == "fail" for c in self.checks)
        lines.append("all checks passed" if not failed else f"{failed} problem(s) to fix")
        return "\n".join(lines)


def _api_of(target: Target) -> Img2ImgApi:
    return target.api()


def check_deployment(
    env: str,
    clients: ClientFactory,
    *,
    region: str | None = None,
    default_region: str | None = None,
    extra_model: str | None = None,
    api_key: str | None = None,
    api_for: ApiFactory = _api_of,
    config: Configured | NotConfigured | ClientError | None = None,
    preflight: bool = False,
) -> Report:
    """Every check for the stack Img2Img-<env>. `clients(service, region_name=...)` makes boto3
    clients; `region` is --region, `default_region` the AWS configuration's, `config` what
    cdk.json says about the environment (or why it says nothing). `preflight`: what a deploy
    needs only (no stack or API yet)."""
    report = Report()
    configured = _config(report, env, config)
    if region:
        where = "--region"
    elif configured:
        region, where = configured.region, f"cdk.json environment {env}"
    else:
        region, where = default_region, "your AWS configuration"
    if not region:
        report.add(
            "region",
            "fail",
            f"no AWS region: no --region, no environment {env!r} in cdk.json, none in your AWS configuration",
            "pass --region, set AWS_REGION, or run from the project's folder (cdk.json names each "
            "environment's region)",
            "configuration",
        )
        return report
    model_region = (configured.bedrock_region if configured else None) or region
    report.add(
        "region",
        "ok",
        f"{region} (from {where})" + (f"; Bedrock in {model_region}" if model_region != region else ""),
    )
    if not _credentials(report, clients, region):
        return report
    if configured:
        _account(report, clients, env, configured, region)
    target = None if preflight else _stack(report, clients, env, region, api_key)
    listed, default = _api(report, target, api_for) if target else ([], "")
    models = _models(report, env, configured, listed, default, extra_model)
    if not models:
        report.add("models", "skip", "no model to check: the API did not list them", "pass --model ID")
    bedrock = clients("bedrock", region_name=model_region) if models else None
    for model_id, role in models:
        details = _model(report, bedrock, env, model_id, model_region, role)
        if configured and role == "default" and details:
            _quota(report, clients, env, configured, model_id, details, model_region)
    return report


def enable_models(
    env: str, clients: ClientFactory, config: Configured, *, wait_seconds: float = 120, poll: float = 5
) -> Report:
    """`make enable-models`: completes each configured model's Marketplace subscription the way
    AWS's model-access page documents it for the SDK (ListFoundationModelAgreementOffers, then
    CreateFoundationModelAgreement with the public offer's token), with the operator's own
    credentials (they need aws-marketplace:Subscribe, Unsubscribe and ViewSubscriptions; the
    functions' roles rightly have none), then waits until GetFoundationModelAvailability says the
    agreement is AVAILABLE. https://docs.aws.amazon.com/bedrock/latest/userguide/model-access.html"""
    report = Report()
    bedrock = clients("bedrock", region_name=config.model_region)
    models = dict.fromkeys(
        base_model_id(m)
        for m in (config.default_model_id, *config.allowed_model_ids, *config.fallback_model_ids)
    )
    for model_id in models:
        name = f"model {model_id}"
        try:
            state = bedrock.get_foundation_model_availability(modelId=model_id)
            if (state.get("agreementAvailability") or {}).get("status") not in ("AVAILABLE", "PENDING"):
                offers = bedrock.list_foundation_model_agreement_offers(modelId=model_id, offerType="PUBLIC")
                if not offers.get("offers"):
                    fix = "choose a model Bedrock offers in this region"
                    report.add(name, "fail", "Bedrock lists no public offer for it", fix, "access")
                    continue
                token = offers["offers"][0]["offerToken"]
                bedrock.create_foundation_model_agreement(modelId=model_id, offerToken=token)
            deadline = time.monotonic() + wait_seconds
            while True:
                problem = _availability(bedrock, model_id, env)
                if not problem or time.monotonic() >= deadline:
                    break
                time.sleep(poll)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            fix = "allow your credentials aws-marketplace:Subscribe, Unsubscribe and ViewSubscriptions"
            report.add(name, "fail", _aws_error(exc), _failure_fix(problem_of(exc), fix), problem_of(exc))
            continue
        if problem:
            report.add(
                name,
                "fail",
                problem[0],
                f"wait a few minutes and run make enable-models ENV={env} again",
                "access",
            )
        else:
            report.add(name, "ok", f"subscribed and available in {config.model_region}")
    return report


def check_endpoint(target: Target, *, api_for: ApiFactory = _api_of) -> Report:
    """The API checks only (an --endpoint or local mode)."""
    report = Report()
    _api(report, target, api_for)
    if target.local:
        report.add("bedrock", "skip", "local mode answers with the Bedrock emulator: no AWS model to check")
    else:
        report.add("bedrock", "skip", "give --env NAME to check the stack and its models in Bedrock")
    return report


def _config(
    report: Report, env: str, config: Configured | NotConfigured | ClientError | None
) -> Configured | None:
    if isinstance(config, Configured):
        bedrock = f", Bedrock in {config.bedrock_region}" if config.bedrock_region else ""
        report.add(
            "cdk.json",
            "ok",
            f"environment {env} ({config.source}): region {config.region}{bedrock}, default model "
            f"{config.default_model_id}, {len(config.allowed_model_ids)} allowed, "
            f"{len(config.fallback_model_ids)} fallback(s)",
        )
        return config
    if isinstance(config, NotConfigured):
        report.add("cdk.json", "skip", config.reason)
    elif isinstance(config, ClientError):
        report.add(
            "cdk.json",
            "fail",
            config.message,
            f"fix cdk.json (make synth ENV={env} names every problem)",
            "configuration",
        )
    return None


def _failure_fix(problem: Problem | None, otherwise: str) -> str:
    if problem == "network":
        return NETWORK_FIX
    if problem == "credentials":
        return CREDENTIALS_FIX
    return otherwise


def _credentials(report: Report, clients: ClientFactory, region: str) -> bool:
    try:
        identity = clients("sts", region_name=region).get_caller_identity()
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        problem = problem_of(exc)
        if problem == "network":
            detail = f"cannot check them: AWS STS in {region} is unreachable ({exc})"
        elif isinstance(exc, botocore.exceptions.NoCredentialsError):
            detail = "no AWS credentials found"
        else:
            detail = _aws_error(exc)
        fix = _failure_fix(problem, "give your principal sts:GetCallerIdentity, or " + CREDENTIALS_FIX)
        if problem == "credentials" and not isinstance(exc, botocore.exceptions.NoCredentialsError):
            fix = "refresh them: " + CREDENTIALS_FIX
        report.add("credentials", "fail", detail, fix, problem)
        return False
    report.add("credentials", "ok", f"{identity.get('Arn')} (account {identity.get('Account')})")
    return True


def _account(report: Report, clients: ClientFactory, env: str, config: Configured, region: str) -> None:
    """What a new account may lack: CDK bootstrap, Lambda concurrency, API Gateway's log role."""
    fix_bootstrap = f"make bootstrap ENV={env}"
    try:
        found = clients("ssm", region_name=region).get_parameter(Name=BOOTSTRAP_VERSION_PARAMETER)
        report.add("cdk bootstrap", "ok", f"version {found['Parameter']['Value']} in {region}")
    except botocore.exceptions.ClientError as exc:
        missing = exc.response.get("Error", {}).get("Code") == "ParameterNotFound"
        detail = f"{region} is not bootstrapped for the CDK" if missing else _aws_error(exc)
        fix = (
            fix_bootstrap
            if missing
            else _failure_fix(problem_of(exc), f"allow ssm:GetParameter, or {fix_bootstrap}")
        )
        report.add("cdk bootstrap", "fail", detail, fix, "configuration" if missing else problem_of(exc))
    except botocore.exceptions.BotoCoreError as exc:
        report.add("cdk bootstrap", "fail", str(exc), NETWORK_FIX, problem_of(exc))

    try:
        limit = clients("lambda", region_name=region).get_account_settings()["AccountLimit"]
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        report.add(
            "lambda concurrency", "warn", _aws_error(exc), "allow lambda:GetAccountSettings", problem_of(exc)
        )
    else:
        total, unreserved = limit["ConcurrentExecutions"], limit["UnreservedConcurrentExecutions"]
        wanted = config.reserved_concurrency
        detail = f"account limit {total}, {unreserved} unreserved; the stack reserves {wanted or 'none'}"
        needed = total - unreserved + wanted + LAMBDA_MIN_UNRESERVED  # a limit that allows it
        if wanted and unreserved - wanted < LAMBDA_MIN_UNRESERVED:
            report.add(
                "lambda concurrency",
                "fail",
                f"{detail}: Lambda must keep {LAMBDA_MIN_UNRESERVED} unreserved",
                f"set api_reserve_concurrency to false for {env} in cdk.json, or raise the limit: "
                "aws service-quotas request-service-quota-increase --service-code lambda "
                f"--quota-code {LAMBDA_CONCURRENCY_QUOTA} --desired-value {needed} "
                f"--region {region}",
                "configuration",
            )
        else:
            report.add("lambda concurrency", "ok", detail)

    try:
        role = clients("apigateway", region_name=region).get_account().get("cloudwatchRoleArn")
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        report.add(
            "api gateway logging",
            "warn",
            _aws_error(exc),
            "allow apigateway:GET on /account",
            problem_of(exc),
        )
        return
    if role or config.api_cloudwatch_role:
        report.add("api gateway logging", "ok", role or "no CloudWatch role yet: the stack creates it")
    else:
        report.add(
            "api gateway logging",
            "fail",
            f"API Gateway in {region} has no CloudWatch role, and api_cloudwatch_role is false: the "
            "stage's access and execution logs would fail the deploy",
            f"set api_cloudwatch_role to true for {env} in cdk.json",
            "configuration",
        )


def _quota(
    report: Report,
    clients: ClientFactory,
    env: str,
    config: Configured,
    model_id: str,
    details: dict[str, Any],
    region: str,
) -> None:
    """The account's requests-per-minute quota for the default model: "On-demand InvokeModel
    requests per minute for <model name>", or "Cross-Region ..." when it is called through an
    inference profile (https://docs.aws.amazon.com/bedrock/latest/userguide/quotas-increase.html)."""
    name = str(details.get("modelName", ""))
    kind = "on-demand" if base_model_id(model_id) == model_id else "cross-region"
    try:
        pages = clients("service-quotas", region_name=region).get_paginator("list_service_quotas")
        quotas = [q for page in pages.paginate(ServiceCode="bedrock") for q in page.get("Quotas", [])]
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        report.add(
            "bedrock quota", "warn", _aws_error(exc), "allow servicequotas:ListServiceQuotas", problem_of(exc)
        )
        return
    found = [
        q
        for q in quotas
        if q.get("QuotaName", "").lower().startswith(kind)
        and "requests per minute" in q.get("QuotaName", "").lower()
        and q.get("QuotaName", "").lower().endswith(f" for {name.lower()}")
    ]
    if not found:
        report.add(
            "bedrock quota",
            "warn",
            f"no {kind} requests-per-minute quota for {name!r} in {region}",
            "look it up in the Service Quotas console (Amazon Bedrock) and set bedrock_requests_per_minute",
        )
        return
    quota = found[0]
    value, wanted = int(quota["Value"]), config.bedrock_requests_per_minute
    detail = f"{quota['QuotaName']}: {value}; bedrock_requests_per_minute is {wanted}"
    if value >= wanted:
        report.add("bedrock quota", "ok", detail)
        return
    report.add(
        "bedrock quota",
        "fail",
        detail + " (calls beyond the quota are throttled)",
        f"set bedrock_requests_per_minute to {value} for {env} in cdk.json, or ask for more: aws "
        f"service-quotas request-service-quota-increase --service-code bedrock --quota-code "
        f"{quota['QuotaCode']} --desired-value {wanted} --region {region}",
        "configuration",
    )


def _stack(
    report: Report, clients: ClientFactory, env: str, region: str, api_key: str | None
) -> Target | None:
    name = stack_name(env)
    try:
        status, outputs = stack_outputs(clients("cloudformation", region_name=region), name)
    except ClientError as exc:
        otherwise = (
            f"give your principal cloudformation:DescribeStacks on {name}"
            if exc.problem == "access"
            else f"deploy it: make deploy ENV={env} (cdk deploy -c env={env}), or pass the stack's --region"
        )
        report.add("stack", "fail", exc.message, _failure_fix(exc.problem, otherwise), exc.problem)
        return None
    if status.endswith("_FAILED") or status.startswith(("ROLLBACK", "DELETE")):
        report.add(
            "stack",
            "fail",
            f"{name} is {status}",
            f"look at the stack's events, fix, and redeploy (make deploy ENV={env})",
            "configuration",
        )
        return None
    report.add("stack", "warn" if status.endswith("_IN_PROGRESS") else "ok", f"{name} is {status}")
    missing = [key for key in REQUIRED_OUTPUTS if not outputs.get(key)]
    if missing:
        report.add(
            "outputs",
            "fail",
            f"missing {', '.join(missing)}",
            f"redeploy: make deploy ENV={env}",
            "configuration",
        )
        return None
    mode = outputs.get(OUTPUT_AUTH_MODE, "iam")
    report.add("outputs", "ok", f"API {outputs[OUTPUT_API_URL]} (auth {mode})")
    if mode == "api_key" and not api_key and outputs.get(OUTPUT_API_KEY_ID):
        try:
            api_key = api_key_value(clients("apigateway", region_name=region), outputs[OUTPUT_API_KEY_ID])
        except ClientError as exc:
            otherwise = "allow apigateway:GET on the key, or pass --api-key"
            report.add("api key", "fail", exc.message, _failure_fix(exc.problem, otherwise), exc.problem)
            return None
    return Target(
        api_url=outputs[OUTPUT_API_URL],
        auth="api_key" if mode == "api_key" else "iam",
        region=region,
        api_key=api_key,
        stack_name=name,
    )


def _api(report: Report, target: Target, api_for: ApiFactory) -> tuple[list[str], str]:
    """Health and the model list; answers the allowed model ids and the default."""
    try:
        api = api_for(target)
        health = api.health()
    except ClientError as exc:
        report.add("api", "fail", exc.message, _api_fix(target, exc), exc.problem)
        return [], ""
    report.add(
        "api",
        "ok",
        f"{target.api_url} answers (environment {health.get('environment')}, {health.get('version')})",
    )
    try:
        listing = api.models()
    except ClientError as exc:
        report.add("models", "fail", exc.message, "see the api function's logs", exc.problem)
        return [], ""
    allowed = [str(m.get("id")) for m in listing.get("models") or [] if isinstance(m, dict)]
    default = str(listing.get("default") or "")
    report.add("models", "ok", f"default {default}; allowed {', '.join(allowed) or 'none'}")
    return allowed, default


def _api_fix(target: Target, exc: ClientError) -> str:
    if exc.problem == "credentials":
        return CREDENTIALS_FIX
    if exc.problem == "access" or exc.exit_code == CONFIGURATION:
        return (
            "give your principal execute-api:Invoke on the API"
            if target.auth == "iam"
            else "pass the stage's API key with --api-key"
        )
    if target.local:
        return "start local mode: img2img local (or make local)"
    if exc.problem == "network":
        return f"{NETWORK_FIX}; check the URL and that the stage is deployed"
    return "check the URL and that the stage is deployed"


def _models(
    report: Report,
    env: str,
    configured: Configured | None,
    listed: list[str],
    default: str,
    extra_model: str | None,
) -> list[tuple[str, Role]]:
    """The models to check, the default first: what the deployed API allows, what cdk.json
    configures (allowed and fallbacks), and --model. Warns when the two disagree."""
    if configured and listed:
        deployed = (default, sorted(listed))
        wanted = (configured.default_model_id, sorted(configured.allowed_model_ids))
        if deployed != wanted:
            report.add(
                "deployed models",
                "warn",
                f"the stack allows {', '.join(listed)} (default {default}); cdk.json says "
                f"{', '.join(configured.allowed_model_ids)} (default {configured.default_model_id})",
                f"redeploy to apply cdk.json: make deploy ENV={env}",
                "configuration",
            )
    models: dict[str, Role] = {}
    for model_id in (default, configured.default_model_id if configured else ""):
        if model_id:
            models.setdefault(model_id, "default")
    for model_id in [*listed, *(configured.allowed_model_ids if configured else ())]:
        models.setdefault(model_id, "allowed")
    if extra_model:
        models.setdefault(extra_model, "extra")
    for model_id in configured.fallback_model_ids if configured else ():
        models.setdefault(model_id, "fallback")
    return list(models.items())


_SWITCH: dict[Role, str] = {
    "default": "set default_model_id in cdk.json to an ACTIVE model and redeploy",
    "allowed": "remove it from allowed_model_ids in cdk.json",
    "fallback": "remove it from fallback_model_ids in cdk.json",
    "extra": "choose a model the deployment lists and Bedrock offers",
}


def _model(
    report: Report, bedrock: Any, env: str, model_id: str, region: str, role: Role
) -> dict[str, Any] | None:
    """Checks one model; answers its GetFoundationModel details when it is ACTIVE."""
    name = f"model {model_id}" + (f" ({role})" if role in ("default", "fallback") else "")
    # A fallback that cannot help degrades the service; any other model that cannot run fails it.
    bad: Verdict = "warn" if role == "fallback" else "fail"
    base = base_model_id(model_id)
    switch = _SWITCH[role]
    retired = retirement(model_id)
    if retired is not None:  # known without asking: Bedrock would only say "not found"
        fix = "choose a live model in cdk.json and redeploy" if role != "extra" else switch
        report.add(name, bad, retired.message(model_id), fix, "lifecycle")
        return None
    try:
        details = bedrock.get_foundation_model(modelIdentifier=base)["modelDetails"]
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("ResourceNotFoundException", "ValidationException"):
            report.add(
                name,
                bad,
                f"Bedrock in {region} does not offer it (end of life, or another region)",
                switch,
                "lifecycle",
            )
        elif problem_of(exc) == "access":
            report.add(
                name,
                bad,
                "not allowed to read it (bedrock:GetFoundationModel)",
                "give your principal bedrock:GetFoundationModel to check models",
                "access",
            )
        else:
            problem = problem_of(exc)
            fix = _failure_fix(problem, "try again; if it persists, check the Bedrock console")
            report.add(name, bad, _aws_error(exc), fix, problem)
        return None
    except botocore.exceptions.BotoCoreError as exc:
        problem = problem_of(exc)
        report.add(name, bad, str(exc), _failure_fix(problem, NETWORK_FIX), problem)
        return None
    lifecycle = details.get("modelLifecycle") or {}
    status = str(lifecycle.get("status", "unknown"))
    if status != "ACTIVE":
        when = lifecycle.get("endOfLifeTime")
        eol = f"; end of life {when:%Y-%m-%d}" if hasattr(when, "strftime") else ""
        verdict: Verdict = "fail" if role == "default" else "warn"
        report.add(name, verdict, f"is {status}, not ACTIVE{eol}", switch, "lifecycle")
        return None
    on_demand = "ON_DEMAND" in (details.get("inferenceTypesSupported") or ["ON_DEMAND"])
    if not on_demand and base == model_id:
        report.add(
            name,
            bad,
            "ACTIVE, but only reachable through a cross-region inference profile",
            f"use the profile id (e.g. us.{base}) in cdk.json",
            "configuration",
        )
        return None
    problem = _availability(bedrock, base, env)
    if problem:
        report.add(name, bad, f"ACTIVE, but {problem[0]}", problem[1], "access")
        return None
    report.add(
        name, "ok", f"ACTIVE in {region} ({details.get('providerName', '')} {details.get('modelName', '')})"
    )
    return dict(details)


def _availability(bedrock: Any, model_id: str, env: str) -> tuple[str, str] | None:
    """What keeps this account from invoking the model, and its fix, if Bedrock says (None:
    nothing known). GetFoundationModelAvailability's four fields, as its API reference lists them
    (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_GetFoundationModelAvailability.html)."""
    try:
        found = bedrock.get_foundation_model_availability(modelId=model_id)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        return (
            f"its access cannot be read ({_aws_error(exc)})",
            "allow bedrock:GetFoundationModelAvailability",
        )
    enable = f"make enable-models ENV={env} (with credentials allowed aws-marketplace:Subscribe)"
    if found.get("regionAvailability") == "NOT_AVAILABLE":
        return "it is not available in this region", "choose another model_region, or the model's us. profile"
    if found.get("authorizationStatus") == "NOT_AUTHORIZED":
        return "this account is not authorized to use it (an IAM or SCP deny)", "ask your AWS administrator"
    agreement = found.get("agreementAvailability") or {}
    if agreement.get("status") != "AVAILABLE":
        why = f"its Marketplace agreement is {agreement.get('status')} {agreement.get('errorMessage') or ''}"
        return why.strip(), enable
    if found.get("entitlementAvailability") == "NOT_AVAILABLE":
        return "this account is not entitled to it (the subscription is not complete)", enable
    return None


def _aws_error(exc: Exception) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code')}: {error.get('Message')}"
    return f"{type(exc).__name__}: {exc}"
