"""`img2img doctor`: checks, in order, what a run needs and says what to fix.

With --env: AWS credentials, the stack and its outputs, the API (health, models), and for each
model the deployment uses: that Bedrock offers it in the region, that it is ACTIVE (not LEGACY,
not end of life) and that this account may invoke it. With --endpoint or --local only the API
checks apply (local mode's Bedrock is an emulator)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import botocore.exceptions

from img2img.catalog import base_model_id, retirement
from img2img_client.api import Img2ImgApi
from img2img_client.errors import CONFIGURATION, ClientError
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
ClientFactory = Callable[[str], Any]  # service name -> boto3 client
ApiFactory = Callable[[Target], Img2ImgApi]


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    detail: str
    fix: str = ""


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, verdict: Verdict, detail: str, fix: str = "") -> Check:
        check = Check(name, verdict, detail, fix)
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
            lines.append(f"[{marks[check.verdict]}] {check.name}: {check.detail}")
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
    region: str | None,
    extra_model: str | None,
    *,
    api_key: str | None = None,
    api_for: ApiFactory = _api_of,
) -> Report:
    """Every check for the stack Img2Img-<env>; `clients` makes boto3 clients in the region."""
    report = Report()
    if not region:
        report.add("region", "fail", "no AWS region configured", "pass --region or set AWS_REGION")
        return report
    report.add("region", "ok", region)
    if not _credentials(report, clients):
        return report
    target = _stack(report, clients, env, region, api_key)
    models = _api(report, target, api_for) if target else []
    if extra_model and extra_model not in models:
        models.append(extra_model)
    if not models:
        report.add("models", "skip", "no model to check: the API did not list them", "pass --model ID")
    bedrock = clients("bedrock")
    for index, model_id in enumerate(models):
        _model(report, bedrock, model_id, region, is_default=index == 0)
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


def _credentials(report: Report, clients: ClientFactory) -> bool:
    fix = "run `aws configure` or `aws sso login`, or set AWS_PROFILE"
    try:
        identity = clients("sts").get_caller_identity()
    except botocore.exceptions.NoCredentialsError:
        report.add("credentials", "fail", "no AWS credentials found", fix)
        return False
    except botocore.exceptions.ClientError as exc:
        report.add("credentials", "fail", _aws_error(exc), "refresh them: " + fix)
        return False
    except botocore.exceptions.BotoCoreError as exc:
        report.add("credentials", "fail", str(exc), fix)
        return False
    report.add("credentials", "ok", f"{identity.get('Arn')} (account {identity.get('Account')})")
    return True


def _stack(
    report: Report, clients: ClientFactory, env: str, region: str, api_key: str | None
) -> Target | None:
    name = stack_name(env)
    try:
        status, outputs = stack_outputs(clients("cloudformation"), name)
    except ClientError as exc:
        report.add(
            "stack",
            "fail",
            exc.message,
            f"deploy it: make deploy ENV={env} (cdk deploy -c env={env}), or pass the stack's --region",
        )
        return None
    if status.endswith("_FAILED") or status.startswith(("ROLLBACK", "DELETE")):
        report.add("stack", "fail", f"{name} is {status}", "look at the stack's events, fix, and redeploy")
        return None
    report.add("stack", "warn" if status.endswith("_IN_PROGRESS") else "ok", f"{name} is {status}")
    missing = [key for key in REQUIRED_OUTPUTS if not outputs.get(key)]
    if missing:
        report.add("outputs", "fail", f"missing {', '.join(missing)}", f"redeploy: make deploy ENV={env}")
        return None
    mode = outputs.get(OUTPUT_AUTH_MODE, "iam")
    report.add("outputs", "ok", f"API {outputs[OUTPUT_API_URL]} (auth {mode})")
    if mode == "api_key" and not api_key and outputs.get(OUTPUT_API_KEY_ID):
        try:
            api_key = api_key_value(clients("apigateway"), outputs[OUTPUT_API_KEY_ID])
        except ClientError as exc:
            report.add("api key", "fail", exc.message, "allow apigateway:GET on the key, or pass --api-key")
            return None
    return Target(
        api_url=outputs[OUTPUT_API_URL],
        auth="api_key" if mode == "api_key" else "iam",
        region=region,
        api_key=api_key,
        stack_name=name,
    )


def _api(report: Report, target: Target, api_for: ApiFactory) -> list[str]:
    """Health and the model list; answers the model ids, the default first."""
    try:
        api = api_for(target)
        health = api.health()
    except ClientError as exc:
        report.add("api", "fail", exc.message, _api_fix(target, exc))
        return []
    report.add(
        "api",
        "ok",
        f"{target.api_url} answers (environment {health.get('environment')}, {health.get('version')})",
    )
    try:
        listing = api.models()
    except ClientError as exc:
        report.add("models", "fail", exc.message, "see the api function's logs")
        return []
    allowed = [str(m.get("id")) for m in listing.get("models") or [] if isinstance(m, dict)]
    default = str(listing.get("default") or "")
    report.add("models", "ok", f"default {default}; allowed {', '.join(allowed) or 'none'}")
    return [default, *[m for m in allowed if m != default]] if default else allowed


def _api_fix(target: Target, exc: ClientError) -> str:
    if exc.exit_code == CONFIGURATION:
        return (
            "give your principal execute-api:Invoke on the API"
            if target.auth == "iam"
            else "pass the stage's API key with --api-key"
        )
    if target.local:
        return "start local mode: img2img local (or make local)"
    return "check the URL and that the stage is deployed"


def _model(report: Report, bedrock: Any, model_id: str, region: str, *, is_default: bool) -> None:
    name = f"model {model_id}" + (" (default)" if is_default else "")
    base = base_model_id(model_id)
    retired = retirement(model_id)
    if retired is not None:  # known without asking: Bedrock would only say "not found"
        report.add(name, "fail", retired.message(model_id), "choose a live model in cdk.json and redeploy")
        return
    switch = (
        "set default_model_id in cdk.json to an ACTIVE model and redeploy"
        if is_default
        else "remove it from allowed_model_ids in cdk.json"
    )
    try:
        details = bedrock.get_foundation_model(modelIdentifier=base)["modelDetails"]
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("ResourceNotFoundException", "ValidationException"):
            report.add(
                name,
                "fail",
                f"Bedrock in {region} does not offer it (end of life, or another region)",
                switch,
            )
        elif code == "AccessDeniedException":
            report.add(
                name,
                "fail",
                "not allowed to read it (bedrock:GetFoundationModel)",
                "give your principal bedrock:GetFoundationModel to check models",
            )
        else:
            report.add(name, "fail", _aws_error(exc), "try again; if it persists, check the Bedrock console")
        return
    except botocore.exceptions.BotoCoreError as exc:
        report.add(name, "fail", str(exc), "check your network and region")
        return
    lifecycle = details.get("modelLifecycle") or {}
    status = str(lifecycle.get("status", "unknown"))
    if status != "ACTIVE":
        when = lifecycle.get("endOfLifeTime")
        eol = f"; end of life {when:%Y-%m-%d}" if hasattr(when, "strftime") else ""
        verdict: Verdict = "fail" if is_default else "warn"
        report.add(name, verdict, f"is {status}, not ACTIVE{eol}", switch)
        return
    on_demand = "ON_DEMAND" in (details.get("inferenceTypesSupported") or ["ON_DEMAND"])
    if not on_demand and base == model_id:
        report.add(
            name,
            "fail",
            "ACTIVE, but only reachable through a cross-region inference profile",
            f"use the profile id (e.g. us.{base}) in cdk.json",
        )
        return
    problem = _availability(bedrock, base)
    if problem:
        report.add(
            name, "fail", f"ACTIVE, but {problem}", "request access in the Bedrock console (Model access)"
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


def _aws_error(exc: botocore.exceptions.ClientError) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code')}: {error.get('Message')}"
