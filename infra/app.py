"""CDK entry point: `cdk synth|deploy|destroy -c env=<name>` (cdk.json runs `python -m infra.app`).

Builds the Lambda asset (cached, no Docker), validates the environment's settings, adds the
stack and the cdk-nag AWS Solutions checks. No AWS or git calls: synth works offline with no
credentials (the first asset build needs PyPI, later ones reuse .build/).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import App

from infra.asset import ROOT, AssetBuildError, build_asset
from infra.config import CONTEXT_KEY, ENV_CONTEXT_KEY, ConfigError, EnvironmentConfig, load_environment
from infra.nag import add_nag_checks
from infra.stack import Img2ImgStack

CDK_JSON = ROOT / "cdk.json"


def cdk_json_context(path: Path = CDK_JSON) -> dict[str, Any]:
    """cdk.json's context (what the CDK CLI passes to the app), for runs without the CLI."""
    context = json.loads(path.read_text())["context"]
    assert isinstance(context, dict)
    return context


def build_app(
    env_name: str | None = None,
    *,
    context: Mapping[str, Any] | None = None,
    outdir: str | None = None,
    nag: bool = True,
) -> tuple[App, Img2ImgStack]:
    """The app for one environment. Without `context` it is the CLI's (cdk.json's and -c's)."""
    app_context = dict(context) if context is not None else None
    if app_context is not None and env_name is not None:
        app_context[ENV_CONTEXT_KEY] = env_name
    app = App(context=app_context, outdir=outdir)
    if app.node.try_get_context(CONTEXT_KEY) is None:  # run without the CLI: read cdk.json
        for key, value in cdk_json_context().items():
            app.node.set_context(key, value)
    name = env_name or app.node.try_get_context(ENV_CONTEXT_KEY)
    config: EnvironmentConfig = load_environment(app.node.try_get_context(CONTEXT_KEY), name)
    stack = Img2ImgStack(app, config=config, code_asset=build_asset())
    if nag:
        add_nag_checks(app)
    return app, stack


def prune_stale_assets(outdir: Path) -> None:
    """Delete asset directories no stack in `outdir` refers to any more. The code asset is
    ~70 MB and every source change stages a new copy, so cdk.out would otherwise only grow."""
    referenced: set[str] = set()
    for manifest in outdir.glob("*.assets.json"):
        for entry in json.loads(manifest.read_text()).get("files", {}).values():
            referenced.add(str(entry.get("source", {}).get("path", "")))
    for staged in outdir.glob("asset.*"):
        if staged.name not in referenced:
            shutil.rmtree(staged) if staged.is_dir() else staged.unlink()


def main() -> int:
    try:
        app, _ = build_app()
    except (ConfigError, AssetBuildError) as exc:
        print(f"img2img: {exc}", file=sys.stderr)
        return 1
    assembly = app.synth()
    prune_stale_assets(Path(assembly.directory))
    return 0


if __name__ == "__main__":
    sys.exit(main())
