"""What cdk.json says about an environment (`--env NAME`): its region, Bedrock region and models.

cdk.json is read the way the CDK app reads it: its `img2img` context block goes through
infra/config.py's own `load_environment` (defaults merged with the environment, validated), loaded
from the checkout that holds the cdk.json, so the command and `make deploy` never disagree on what
an environment is. The cdk.json is the one in the current folder or a folder above it, else the
one of the checkout this command was installed from (`make install`)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from img2img_client.errors import ConfigurationError

CDK_JSON = "cdk.json"
CONFIG_MODULE = Path("infra", "config.py")


class NotConfigured(Exception):
    """No cdk.json, or none that names the environment: nothing is known, nothing is wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Configured:
    """One environment's settings that the command uses."""

    env: str
    source: Path  # the cdk.json
    region: str
    bedrock_region: str | None
    default_model_id: str
    allowed_model_ids: tuple[str, ...]
    fallback_model_ids: tuple[str, ...]
    api_auth: str
    bedrock_requests_per_minute: int = 0
    reserved_concurrency: int = 0  # what the api function reserves (0: none)
    api_cloudwatch_role: bool = True  # the stack creates API Gateway's account logging role

    @property
    def model_region(self) -> str:
        return self.bedrock_region or self.region


def find_cdk_json(start: Path | None = None) -> Path | None:
    """The project's cdk.json (one with infra/config.py beside it): here or above, else the
    checkout this package was installed from."""
    here = (start or Path.cwd()).resolve()
    installed_from = Path(__file__).resolve().parent.parent
    for folder in (here, *here.parents, installed_from):
        if (folder / CDK_JSON).is_file() and (folder / CONFIG_MODULE).is_file():
            return folder / CDK_JSON
    return None


def configured(env: str, cdk_json: Path | None = None) -> Configured:
    """The environment `env` of cdk.json. Raises NotConfigured when there is no cdk.json or it
    has no such environment, ConfigurationError when it has one that is not valid."""
    path = cdk_json or find_cdk_json()
    if path is None:
        raise NotConfigured(f"no {CDK_JSON} in this folder or above it (run from the project's folder)")
    config = _config_module(path.parent)
    try:
        block = json.loads(path.read_text())["context"].get(config.CONTEXT_KEY)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}", problem="configuration") from exc
    known = config.environment_names(block) if isinstance(block, dict) else []
    if known and env not in known:
        raise NotConfigured(f"{path} has no environment {env!r} (it has {', '.join(known)})")
    try:
        settings: Any = config.load_environment(block, env)
    except config.ConfigError as exc:
        raise ConfigurationError(f"{path}: {exc}", code="invalid_cdk_json", problem="configuration") from exc
    return Configured(
        env=env,
        source=path,
        region=str(settings.region),
        bedrock_region=settings.bedrock_region,
        default_model_id=str(settings.default_model_id),
        allowed_model_ids=tuple(settings.allowed_model_ids),
        fallback_model_ids=tuple(settings.fallback_model_ids),
        api_auth=str(settings.api_auth),
        bedrock_requests_per_minute=int(settings.bedrock_requests_per_minute),
        reserved_concurrency=settings.api_reserved_concurrency if settings.api_reserve_concurrency else 0,
        api_cloudwatch_role=bool(settings.api_cloudwatch_role),
    )


def configured_region(env: str) -> str | None:
    """The stack's region from cdk.json, or None when cdk.json does not say (or is not valid:
    `doctor` reports that)."""
    try:
        return configured(env).region
    except (NotConfigured, ConfigurationError):
        return None


def _config_module(root: Path) -> ModuleType:
    """infra/config.py of the checkout at `root`, loaded by its path (the `infra` package is
    not installed: it is the CDK app's, and its __init__ is all it shares)."""
    path = (root / CONFIG_MODULE).resolve()
    name = f"img2img_client._infra_config_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigurationError(f"cannot load {path}", problem="configuration")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic resolves the models' annotations through it
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ConfigurationError(f"cannot load {path}: {exc}", problem="configuration") from exc
    return module
