"""`img2img doctor`: checks, in order, what a run needs and says what to fix.

With --env: what cdk.json says about the environment (its region, Bedrock region and models,
read by infra/config.py's own rules), AWS credentials, the stack and its outputs, the API
(health, models), and for each model the deployment uses or cdk.json configures: that Bedrock
offers it in the model region, that it is ACTIVE (not LEGACY, not end of life) and that this
account may invoke it. With --endpoint or --local only the API checks apply (local mode's
Bedrock is an emulator). Every failure names its kind of problem: network, credentials, access,
lifecycle or configuration."""

from __future__ import annotations

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
) -> Report:
    """Every check for the stack Img2Img-<env>. `clients(service, region_name=...)` makes boto3
    clients; `region` is --region, `default_region` the AWS configuration's, `config` what
    cdk.json says about the environment (or why it says nothing)."""
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
    target = _stack(report, clients, env, region, api_key)
    listed, default = _api(report, target, api_for) if target else ([], "")
    models = _models(report, env, configured, listed, default, extra_model)
    if not models:
        report.add("models", "skip", "no model to check: the API did not list them", "pass --model ID")
    bedrock = clients("bedrock", region_name=model_region) if models else None
    for model_id, role in models:
        _model(report, bedrock, model_id, model_region, role)
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


def _model(report: Report, bedrock: Any, model_id: str, region: str, role: Role) -> None:
    name = f"model {model_id}" + (f" ({role})" if role in ("default", "fallback") else "")
    # A fallback that cannot help degrades the service; any other model that cannot run fails it.
    bad: Verdict = "warn" if role == "fallback" else "fail"
    base = base_model_id(model_id)
    switch = _SWITCH[role]
    retired = retirement(model_id)
    if retired is not None:  # known without asking: Bedrock would only say "not found"
        fix = "choose a live model in cdk.json and redeploy" if role != "extra" else switch
        report.add(name, bad, retired.message(model_id), fix, "lifecycle")
        return
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
        return
    except botocore.exceptions.BotoCoreError as exc:
        problem = problem_of(exc)
        report.add(name, bad, str(exc), _failure_fix(problem, NETWORK_FIX), problem)
        return
    lifecycle = details.get("modelLifecycle") or {}
    status = str(lifecycle.get("status", "unknown"))
    if status != "ACTIVE":
        when = lifecycle.get("endOfLifeTime")
        eol = f"; end of life {when:%Y-%m-%d}" if hasattr(when, "strftime") else ""
        verdict: Verdict = "fail" if role == "default" else "warn"
        report.add(name, verdict, f"is {status}, not ACTIVE{eol}", switch, "lifecycle")
        return
    on_demand = "ON_DEMAND" in (details.get("inferenceTypesSupported") or ["ON_DEMAND"])
    if not on_demand and base == model_id:
        report.add(
            name,
            bad,
            "ACTIVE, but only reachable through a cross-region inference profile",
            f"use the profile id (e.g. us.{base}) in cdk.json",
            "configuration",
        )
        return
    problem = _availability(bedrock, base)
    if problem:
        report.add(
            name,
            bad,
            f"ACTIVE, but {problem}",
            "request access in the Bedrock console (Model access)",
            "access",
        )
        return
    report.add(
        name, "ok", f"ACTIVE in {region} ({details.get('providerName', '')} {details.get('modelName', '')})"
    )


def _availability(bedrock: Any, model_id: str) -> str | None:
    """What keeps this account from invoking the model, if Bedrock says (None: nothing known)."""
    try:
        found = bedrock.get_foundation_model_availability(modelId=model_id)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError, AttributeError):
        return None  # an older API or a missing permission: GetFoundationModel already passed
    if found.get("authorizationStatus") == "NOT_AUTHORIZED":
        return "this account is not authorized to use it"
    if found.get("entitlementAvailability") == "NOT_AVAILABLE":
        return "model access is not granted in this account"
    if found.get("regionAvailability") == "NOT_AVAILABLE":
        return "it is not available in this region"
    agreement = found.get("agreementAvailability") or {}
    if agreement.get("status") not in (None, "AVAILABLE"):
        return f"its agreement is {agreement.get('status')} {agreement.get('errorMessage') or ''}".strip()
    return None


def _aws_error(exc: Exception) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code')}: {error.get('Message')}"
    return f"{type(exc).__name__}: {exc}"
