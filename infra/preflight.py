"""`make deploy` runs this first: is every model the environment relies on still served?

Reads cdk.json (a retired id is already refused there, with its end-of-life date), then asks
Bedrock's GetFoundationModel in the model region about the default and every fallback, the way
the deployed lifecycle watch will. It stops the deploy (exit 1) when the default is gone, and
warns about a LEGACY model or one it cannot read (no credentials yet, access denied): those do
not make a deploy fail, and `cdk deploy` names credential problems itself.

    python -m infra.preflight <env>
"""

from __future__ import annotations

import sys

from img2img.adapters.model_catalog import FoundationModels, bedrock_client
from img2img.domain.lifecycle import check_models
from infra.app import cdk_json_context
from infra.config import CONTEXT_KEY, ConfigError, load_environment


def preflight(env: str, lookup: FoundationModels | None = None) -> tuple[int, list[str]]:
    """(exit code, lines to print)."""
    try:
        config = load_environment(cdk_json_context().get(CONTEXT_KEY), env)
    except ConfigError as exc:
        return 2, [f"preflight: {exc}"]
    models = lookup or FoundationModels(bedrock_client(config.model_region))
    chain = (config.default_model_id, *config.fallback_model_ids, *config.allowed_model_ids)
    report = check_models(chain, models.status)
    lines, code = [], 0
    default_base = report.models[0].model_id
    for model in report.models:
        role = "default" if model.model_id == default_base else "configured"
        line = (
            f"preflight: {model.model_id} ({role}) in {config.model_region}: {model.status} - {model.detail}"
        )
        if model.status == "GONE" and role == "default":
            code = 1
            line += (
                "\n  stop: set default_model_id in cdk.json to a live model (docs/models.md) and deploy again"
            )
        elif model.not_active or model.status == "UNKNOWN":
            line += "\n  warning: plan a change of model in cdk.json (img2img doctor explains)"
        lines.append(line)
    return code, lines


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m infra.preflight <env>", file=sys.stderr)
        return 2
    code, lines = preflight(args[0])
    print("\n".join(lines), file=sys.stderr if code else sys.stdout)
    return code


if __name__ == "__main__":
    sys.exit(main())
