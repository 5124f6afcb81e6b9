"""Fixtures for the infrastructure tests: the real CDK app, synthesized once per environment
(and per variant) per session, offline (sockets blocked, no AWS credentials in reach)."""

from __future__ import annotations

import copy
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Before jsii starts node: the Node.js LTS package.json installs (mk/infra.mk does the same).
os.environ.setdefault(
    "JSII_NODE",
    shutil.which("node", path=Path(__file__).resolve().parents[2] / "node_modules" / ".bin") or "node",
)
os.environ.setdefault("JSII_DEPRECATED", "fail")  # no deprecated CDK API in infra/

from aws_cdk.assertions import Template

from infra.app import build_app, cdk_json_context
from infra.asset import Asset, build_asset
from infra.config import CONTEXT_KEY, EnvironmentConfig
from infra.nag import DRY_RUN_CONTEXT_KEY
from infra.stack import Img2ImgStack

ENVIRONMENTS = ("dev", "staging", "prod")
DISABLE_ASSET_STAGING = "aws:cdk:disable-asset-staging"  # no 70 MB copy per synth in tests
AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)
# One variant synth for the opt-in settings, shared by the tests that need any of them.
OPTED_IN = {"api_cloudwatch_role": False, "alarm_email": "ops@example.com", "api_reserve_concurrency": True}


@dataclass(frozen=True)
class Synth:
    config: EnvironmentConfig
    stack: Img2ImgStack
    template: dict[str, Any]
    assertions: Template

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.template["Resources"].items() if v["Type"] == resource_type}

    def logical_id(self, construct: Any) -> str:
        return str(self.stack.get_logical_id(construct.node.default_child))


@contextmanager
def offline() -> Iterator[None]:
    """No network from this process and no AWS credentials: synth must not need either."""
    saved_socket, saved_env = socket.socket, dict(os.environ)

    class _NoNetwork(socket.socket):
        def __init__(self, family: int = -1, *args: Any, **kwargs: Any) -> None:
            if family in (socket.AF_INET, socket.AF_INET6):
                raise RuntimeError("synth tried to open a network socket")
            super().__init__(family, *args, **kwargs)

    for name in AWS_VARIABLES:
        os.environ.pop(name, None)
    os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    socket.socket = _NoNetwork  # type: ignore[misc]
    try:
        yield
    finally:
        socket.socket = saved_socket  # type: ignore[misc]
        os.environ.clear()
        os.environ.update(saved_env)


def context_with(
    env: str, overrides: dict[str, Any] | None = None, *, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """cdk.json's context, with `overrides` applied to environment `env` and `extra` keys added."""
    context = copy.deepcopy(cdk_json_context())
    if overrides:
        context[CONTEXT_KEY]["environments"][env].update(overrides)
    context.update(extra or {})
    return context


@pytest.fixture(scope="session")
def code_asset() -> Asset:
    return build_asset()  # the synth code path's own call: cached in .build/


@pytest.fixture(scope="session")
def synth(code_asset: Asset, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Synth]:
    """synth(env, **overrides): the environment's stack, synthesized with cdk-nag (any
    unacknowledged finding fails the synth), cached for the session."""
    cache: dict[str, Synth] = {}

    def _synth(env: str, **overrides: Any) -> Synth:
        key = f"{env}:{sorted(overrides.items())!r}"
        if key not in cache:
            outdir = tmp_path_factory.mktemp(f"cdk-{env}")
            with offline():
                app, stack = build_app(
                    env,
                    context=context_with(env, overrides, extra={DISABLE_ASSET_STAGING: True}),
                    outdir=str(outdir),
                )
                assembly = app.synth()
            template = assembly.get_stack_by_name(stack.stack_name).template
            cache[key] = Synth(stack.config, stack, template, Template.from_json(template))
        return cache[key]

    return _synth


@pytest.fixture(scope="session", params=ENVIRONMENTS)
def env_synth(request: pytest.FixtureRequest, synth: Callable[..., Synth]) -> Synth:
    return synth(request.param)


@pytest.fixture(scope="session")
def dry_run_stack(code_asset: Asset) -> Callable[[str], Img2ImgStack]:
    """The environment's stack with acknowledgements recorded but not applied (no synth)."""
    cache: dict[str, Img2ImgStack] = {}

    def _build(env: str) -> Img2ImgStack:
        if env not in cache:
            with offline():
                _, stack = build_app(
                    env, context=context_with(env, extra={DRY_RUN_CONTEXT_KEY: True}), nag=False
                )
            cache[env] = stack
        return cache[env]

    return _build
