"""Opt-in end-to-end fixtures: a deployed stack, found by its CloudFormation outputs.

Runs only with IMG2IMG_E2E_ENV=<env> (`make e2e ENV=dev`) and AWS credentials that resolve;
otherwise every test skips, saying why, without calling AWS. The stack's region comes from
cdk.json's entry for the environment.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from infra.app import cdk_json_context
from infra.config import CONTEXT_KEY, EnvironmentConfig, load_environment

E2E_ENV_VARIABLE = "IMG2IMG_E2E_ENV"
ID_TOKEN_VARIABLE = "IMG2IMG_E2E_ID_TOKEN"  # api_auth cognito: a signed-in user's ID token


@dataclass
class Deployed:
    config: EnvironmentConfig
    outputs: dict[str, str]
    session: Any  # boto3.Session
    api_key: str | None

    @property
    def api_url(self) -> str:
        return self.outputs["ApiUrl"].rstrip("/")

    def client(self, service: str) -> Any:
        return self.session.client(service, region_name=self.config.region)

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        sign: bool = True,
        timeout: float = 60,
    ) -> Any:
        """One API request, authenticated the way the stack's ApiAuthMode says (unless sign=False)."""
        import requests
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        url = f"{self.api_url}{path}"
        data = json.dumps(body).encode() if body is not None else None
        headers = {"content-type": "application/json"} if body is not None else {}
        if sign and self.outputs["ApiAuthMode"] == "iam":
            request = AWSRequest(method=method, url=url, data=data, headers=headers)
            SigV4Auth(self.session.get_credentials(), "execute-api", self.config.region).add_auth(request)
            headers = dict(request.headers)
        elif sign and self.api_key:
            headers["x-api-key"] = self.api_key
        elif sign and self.outputs["ApiAuthMode"] == "cognito":
            token = os.environ.get(ID_TOKEN_VARIABLE, "").strip()
            if not token:
                pytest.skip(
                    f"api_auth cognito: set {ID_TOKEN_VARIABLE} to a signed-in user's ID token (sign in on "
                    "the page, then copy sessionStorage's token) to run the routes that need one"
                )
            headers["Authorization"] = token
        return requests.request(method, url, data=data, headers=headers, timeout=timeout)


def _skip_unless_opted_in() -> str:
    env = os.environ.get(E2E_ENV_VARIABLE, "").strip()
    if not env:
        pytest.skip(
            f"end-to-end tests run against a deployed stack: set {E2E_ENV_VARIABLE}=<env> (make e2e ENV=dev)"
        )
    return env


@pytest.fixture(scope="session")
def deployed() -> Iterator[Deployed]:
    env = _skip_unless_opted_in()
    config = load_environment(cdk_json_context()[CONTEXT_KEY], env)
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    session = boto3.Session(region_name=config.region)
    if session.get_credentials() is None:
        pytest.skip(f"no AWS credentials resolve (profile, environment or SSO) for {config.stack_name}")
    try:
        stacks = session.client("cloudformation").describe_stacks(StackName=config.stack_name)["Stacks"]
    except ClientError as exc:
        pytest.fail(f"{config.stack_name} is not deployed in {config.region}: make deploy ENV={env} ({exc})")
    except BotoCoreError as exc:
        pytest.skip(f"AWS is unreachable or credentials are unusable: {exc}")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    api_key = None
    if outputs.get("ApiAuthMode") == "api_key":
        api_key = session.client("apigateway").get_api_key(apiKey=outputs["ApiKeyId"], includeValue=True)[
            "value"
        ]
    yield Deployed(config, outputs, session, api_key)


@pytest.fixture(scope="session")
def source_png() -> bytes:
    """A 1024x1024 picture: an SDXL size, so no model needs it resized."""
    from tests import imagegen

    return imagegen.png(1024, 1024, noise=8)


def poll(check: Callable[[], Any], *, timeout: float, interval: float = 5.0, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """`make e2e`'s checklist: one line per check, in words, with what it found."""
    env = os.environ.get(E2E_ENV_VARIABLE, "").strip()
    if not env:
        return
    found: dict[str, tuple[str, Any]] = {}
    for outcome in ("passed", "skipped", "failed"):  # a later outcome wins: failed over the rest
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "nodeid", ""):
                found[report.nodeid] = (outcome, report)
    lines = []
    for nodeid, (outcome, report) in sorted(found.items()):
        name = nodeid.split("::")[-1].removeprefix("test_").replace("_", " ")
        if outcome == "skipped" and isinstance(report.longrepr, tuple):
            name += f" (skipped: {report.longrepr[2].removeprefix('Skipped: ')})"
        mark = {"passed": "[x]", "failed": "[ ] FAILED:", "skipped": "[-]"}[outcome]
        lines.append(f"{mark} {name}")
    terminalreporter.write_sep("=", f"first-deploy checklist for {env}")
    for line in lines:
        terminalreporter.write_line(line)
