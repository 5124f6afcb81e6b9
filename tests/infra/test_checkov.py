"""checkov, an IaC scanner independent of cdk-nag and cfn-lint, on every environment's template:
no failed check that the template does not acknowledge, and every acknowledgement (checkov's
resource Metadata `checkov: {skip: [...]}`, added by infra/checkov.py) matches a real finding.

checkov runs offline, once for all templates: --skip-download (no Bridgecrew/Prisma guidelines
or policies), no API key (nothing uploaded), BC_SKIP_MAPPING (no mapping download). It lives in
its own virtualenv (mk/infra.mk): its pins (boto3 1.35, ...) exclude the project's.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infra.asset import ROOT
from infra.checkov import CHECK_ID, METADATA_KEY
from tests.infra.conftest import ENVIRONMENTS, Synth
from tests.infra.test_job_events import WEBHOOK_VARIANT

pytestmark = pytest.mark.infra

CHECKOV = Path(os.environ.get("IMG2IMG_CHECKOV", ROOT / ".venv" / "checkov" / "bin" / "checkov"))
UNACKNOWLEDGED = "unacknowledged"  # the same template with every checkov skip removed
TIMEOUT_SECONDS = 120
WEBHOOK = "dev-webhook"  # dev with a webhook and a named bus (tests/infra/test_job_events.py)

Finding = tuple[str, str]  # (logical id, check id)


def without_skips(template: dict[str, Any]) -> dict[str, Any]:
    stripped = copy.deepcopy(template)
    for resource in stripped["Resources"].values():
        resource.get("Metadata", {}).pop(METADATA_KEY, None)
    return stripped


def skips(template: dict[str, Any]) -> dict[Finding, str]:
    """(logical id, check id) -> comment, for every skip in the template."""
    found = {}
    for logical_id, resource in template["Resources"].items():
        for skip in resource.get("Metadata", {}).get(METADATA_KEY, {}).get("skip", []):
            found[(logical_id, skip["id"])] = skip["comment"]
    return found


def run_checkov(directory: Path, files: list[Path]) -> tuple[dict[str, list[dict[str, Any]]], float]:
    """Failed checks per file name, and how long checkov took."""
    if not CHECKOV.exists():
        pytest.fail(f"checkov is not installed at {CHECKOV}: run `make install` (mk/infra.mk installs it)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "PRISMA_", "CKV_"))}
    env |= {"BC_SKIP_MAPPING": "TRUE", "CHECKOV_ALLOW_TEXT_MAPPING": "FALSE", "HOME": str(directory)}
    args = [str(CHECKOV), "--framework", "cloudformation", "--skip-download", "--quiet", "--compact"]
    args += ["--output", "json", *(arg for f in files for arg in ("--file", str(f)))]
    started = time.monotonic()
    result = subprocess.run(
        args, cwd=directory, env=env, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False
    )
    elapsed = time.monotonic() - started
    # 0: nothing failed, 1: something failed; anything else is checkov itself failing.
    assert result.returncode in (0, 1), result.stderr[-4000:]
    reports = json.loads(result.stdout)
    failed: dict[str, list[dict[str, Any]]] = {f.name: [] for f in files}
    for report in reports if isinstance(reports, list) else [reports]:
        assert report["check_type"] == "cloudformation", report["check_type"]
        assert report["summary"]["parsing_errors"] == 0, report["summary"]
        for check in report.get("results", {}).get("failed_checks", []):
            failed[Path(check["file_path"]).name].append(check)
    return failed, elapsed


@pytest.fixture(scope="module")
def checkov(
    synth: Callable[..., Synth], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    """Per environment: its template, the findings of it and of its copy without skips."""
    directory = tmp_path_factory.mktemp("checkov")
    templates = {env: synth(env).template for env in ENVIRONMENTS}
    templates[WEBHOOK] = synth("dev", **WEBHOOK_VARIANT).template  # the webhook's resources too
    files = []
    for env, template in templates.items():
        for name, content in ((env, template), (f"{env}.{UNACKNOWLEDGED}", without_skips(template))):
            path = directory / f"{name}.json"
            path.write_text(json.dumps(content))
            files.append(path)
    failed, elapsed = run_checkov(directory, files)
    print(f"checkov: {len(files)} templates in {elapsed:.1f} s")
    return {
        env: {
            "template": templates[env],
            "failed": failed[f"{env}.json"],
            "unacknowledged": failed[f"{env}.{UNACKNOWLEDGED}.json"],
            "elapsed": elapsed,
        }
        for env in templates
    }


def finding(check: dict[str, Any]) -> Finding:
    # checkov names a CloudFormation resource `<Type>.<logical id>`.
    return (str(check["resource"]).rsplit(".", 1)[-1], str(check["check_id"]))


@pytest.mark.parametrize("env", [*ENVIRONMENTS, WEBHOOK])
def test_checkov_finds_nothing_unacknowledged(env: str, checkov: dict[str, dict[str, Any]]) -> None:
    failed = sorted(f"{c['check_id']} {c['check_name']}: {c['resource']}" for c in checkov[env]["failed"])
    assert failed == [], "\n".join(failed)


@pytest.mark.parametrize("env", [*ENVIRONMENTS, WEBHOOK])
def test_every_checkov_skip_matches_a_real_finding_and_says_why(
    env: str, checkov: dict[str, dict[str, Any]]
) -> None:
    acknowledged = skips(checkov[env]["template"])
    assert acknowledged, "the template skips nothing: infra/checkov.py's metadata is missing"
    for (logical_id, check_id), comment in acknowledged.items():
        assert CHECK_ID.match(check_id), (logical_id, check_id)
        assert len(comment) >= 40, (logical_id, check_id, comment)
    # Without the skips checkov fails exactly the acknowledged checks: no stale skip, and the
    # skips (not some other setting) are what make the clean run clean.
    assert {finding(c) for c in checkov[env]["unacknowledged"]} == set(acknowledged)


def test_checkov_runs_within_its_budget(checkov: dict[str, dict[str, Any]]) -> None:
    assert checkov[ENVIRONMENTS[0]]["elapsed"] < 60


def test_checkov_skips_are_checked_when_added() -> None:
    from aws_cdk import App, Stack
    from aws_cdk import aws_sqs as sqs

    from infra.checkov import skip_check

    queue = sqs.Queue(Stack(App(), "S"), "Q")
    with pytest.raises(ValueError, match="CKV_AWS_<n>"):
        skip_check(queue, "AwsSolutions-SQS3", "a reason long enough to pass the length check")
    with pytest.raises(ValueError, match="say why"):
        skip_check(queue, "CKV_AWS_27", "because")
    skip_check(queue, "CKV_AWS_27", "a reason long enough to pass the length check")
    with pytest.raises(ValueError, match="already skipped"):
        skip_check(queue, "CKV_AWS_27", "a reason long enough to pass the length check")
