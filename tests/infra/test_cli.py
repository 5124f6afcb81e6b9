"""`cdk synth -c env=<name>` through the pinned CDK CLI (what `make synth` runs), with no AWS
credentials and no Docker, exactly as a user's first command after `make install`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from infra.asset import ROOT, Asset

pytestmark = pytest.mark.infra

CDK_SCRIPT = ROOT / "node_modules" / "aws-cdk" / "bin" / "cdk"
# The Node.js LTS package.json installs (Linux), else the PATH's: what mk/infra.mk runs the CLI with.
NODE = ROOT / "node_modules" / ".bin" / "node"
CDK = [str(NODE) if NODE.exists() else "node", str(CDK_SCRIPT)]


def test_cdk_cli_synthesizes_offline_without_credentials(tmp_path: Path, code_asset: Asset) -> None:
    if not CDK_SCRIPT.exists():
        pytest.fail(
            "the CDK CLI is not installed: run `make install` (npm ci installs package.json's aws-cdk)"
        )
    outdir = tmp_path / "cdk.out"
    stale = outdir / "asset.0000stale"
    stale.mkdir(parents=True)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),  # no ~/.aws, no CDK CLI cache from the user
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "CDK_DISABLE_VERSION_CHECK": "1",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
        "DOCKER_HOST": "unix:///nonexistent/docker.sock",  # no Docker either
        "JSII_NODE": CDK[0],  # the app's jsii runs on the same Node, with no warning silenced
    }
    result = subprocess.run(
        [*CDK, "synth", "-c", "env=dev", "--quiet", "--no-notices", "--output", str(outdir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "node" not in result.stderr.lower(), result.stderr[-4000:]  # jsii's Node-version banner
    template = json.loads((outdir / "Img2Img-dev.template.json").read_text())
    assert "Outputs" in template and "ApiUrl" in template["Outputs"]
    assets = json.loads((outdir / "Img2Img-dev.assets.json").read_text())["files"]
    staged = {entry["source"]["path"] for entry in assets.values()}
    assert all((outdir / path).exists() for path in staged)
    assert not stale.exists()  # the app prunes asset copies no stack refers to


def test_cdk_cli_reports_a_bad_environment_clearly(tmp_path: Path) -> None:
    if not CDK_SCRIPT.exists():
        pytest.fail("the CDK CLI is not installed: run `make install`")
    result = subprocess.run(
        [*CDK, "synth", "-c", "env=nope", "--quiet", "--no-notices", "--output", str(tmp_path / "out")],
        cwd=ROOT,
        env={
            **os.environ,
            "HOME": str(tmp_path),
            "CDK_DISABLE_VERSION_CHECK": "1",
            "CDK_DISABLE_CLI_TELEMETRY": "true",
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode != 0
    assert "cdk.json has no environment 'nope' (known: dev, prod, staging)" in result.stderr
