"""The typed per-environment configuration: cdk.json's environments load, and every mistake
fails with a message naming the environment and the key."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from img2img.catalog import split_inference_profile
from infra.app import cdk_json_context
from infra.config import (
    CONTEXT_KEY,
    ConfigError,
    EnvironmentConfig,
    environment_names,
    load_environment,
)
from tests.infra.conftest import ENVIRONMENTS

pytestmark = pytest.mark.infra


def block() -> dict[str, Any]:
    return copy.deepcopy(cdk_json_context()[CONTEXT_KEY])


def load_with(env: str, **overrides: Any) -> EnvironmentConfig:
    settings = block()
    settings["environments"][env].update(overrides)
    return load_environment(settings, env)


def test_every_cdk_json_environment_is_tested() -> None:
    assert sorted(ENVIRONMENTS) == environment_names(block())


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_cdk_json_environments_load(env: str) -> None:
    config = load_environment(block(), env)
    assert config.name == env
    assert config.stack_name == f"Img2Img-{env}"
    assert config.default_model_id in config.allowed_model_ids
    assert config.sync_budget_seconds < config.api_timeout_seconds <= 29
    assert config.queue_visibility_timeout_seconds >= 6 * config.worker_timeout_seconds


def test_environments_differ_where_cdk_json_says() -> None:
    dev, staging, prod = (load_environment(block(), env) for env in ENVIRONMENTS)
    assert (dev.removal_policy, staging.removal_policy, prod.removal_policy) == (
        "destroy",
        "destroy",
        "retain",
    )
    assert (dev.point_in_time_recovery, prod.point_in_time_recovery) == (False, True)
    # SnapStart: on in prod, where cold starts meet users, and in staging, which tries prod's
    # settings first; off in dev, where its cache charge buys nothing (README: Cold start).
    assert (dev.snapstart, staging.snapstart, prod.snapstart) == (False, True, True)
    assert (dev.api_auth, staging.api_auth, prod.api_auth) == ("iam", "api_key", "iam")
    assert prod.log_retention_days > dev.log_retention_days
    # Defaults merge under each environment's own keys (tags merge key by key).
    assert dev.tags == prod.tags == {"application": "img2img"}
    assert dev.worker_timeout_seconds == prod.worker_timeout_seconds


def test_a_new_environment_needs_only_its_region() -> None:
    settings = block()
    settings["environments"]["qa-eu"] = {"region": "eu-west-1", "tags": {"team": "imaging"}}
    config = load_environment(settings, "qa-eu")
    assert config.region == "eu-west-1" and config.account is None
    assert config.tags == {"application": "img2img", "team": "imaging"}


def test_no_environment_selected_says_how_to_pick_one() -> None:
    with pytest.raises(ConfigError, match=r"pass -c env=<name> \(one of: dev, prod, staging\)"):
        load_environment(block(), None)


def test_unknown_environment_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"no environment 'qa' \(known: dev, prod, staging\)"):
        load_environment(block(), "qa")


def test_missing_block_is_reported() -> None:
    with pytest.raises(ConfigError, match="context key 'img2img' is missing"):
        load_environment(None, "dev")
    with pytest.raises(ConfigError, match="must be a non-empty object"):
        load_environment({"environments": {}}, "dev")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"api_timeout_seconds": 40},
            r"key 'api_timeout_seconds': Input should be less than or equal to 29 \(got 40\)",
        ),
        ({"api_timout_seconds": 20}, r"key 'api_timout_seconds': is not a setting \(a typo\?\)"),
        ({"region": "Oregon"}, r"key 'region': String should match pattern"),
        ({"account": "12345"}, r"key 'account': String should match pattern"),
        (
            {"default_model_id": "amazon.nova-canvas-v1:0"},
            r"key 'default_model_id': 'amazon.nova-canvas-v1:0' is not one of",
        ),
        ({"allowed_model_ids": []}, r"key 'allowed_model_ids': Tuple should have at least 1 item"),
        (
            {"allowed_model_ids": ["Stability SDXL"]},
            r"key 'allowed_model_ids\[0\]': String should match pattern",
        ),
        (
            {"log_retention_days": 10},
            r"key 'log_retention_days': 10 is not a CloudWatch Logs retention period",
        ),
        ({"api_auth": "oauth"}, r"key 'api_auth': Input should be 'iam', 'api_key' or 'cognito'"),
        (
            {"api_key_quota_per_day": 10},
            r"key 'api_key_quota_per_day': only applies when api_auth is 'api_key'",
        ),
        (
            {"worker_max_concurrency": 1},
            r"key 'worker_max_concurrency': Input should be greater than or equal to 2",
        ),
        ({"api_key_callers": ["ci", "ci"]}, r"key 'api_key_callers': name each caller once"),
        (
            {"api_timeout_seconds": 10, "sync_margin_seconds": 10},
            r"key 'sync_margin_seconds': must be less than api_timeout_seconds \(10\)",
        ),
        ({"removal_policy": "snapshot"}, r"key 'removal_policy': Input should be 'destroy' or 'retain'"),
        ({"point_in_time_recovery": "yes"}, r"key 'point_in_time_recovery': Input should be a valid boolean"),
        ({"snapstart": "on"}, r"key 'snapstart': Input should be a valid boolean"),
        (
            {"snapstart": True, "region": "ap-southeast-6"},
            r"key 'snapstart': Lambda SnapStart is not available in ap-southeast-6 \(Asia Pacific",
        ),
        (
            {"snapstart": True, "region": "ap-east-2"},
            r"key 'snapstart': Lambda SnapStart is not available in ap-east-2 \(Asia Pacific \(Taipei\)\)",
        ),
        ({"alarm_email": "ops"}, r"key 'alarm_email': String should match pattern"),
        ({"tags": {"aws:owner": "me"}}, r"key 'tags': the 'aws:' prefix is reserved"),
        (
            {"api_throttle_burst_limit": 1},
            r"key 'api_throttle_burst_limit': must be at least api_throttle_rate_limit",
        ),
        ({"name": "other"}, r"key 'name': is the entry's own key"),
        (
            {"max_receive_count": 3},
            r"key 'max_receive_count': 3 is below 5: AWS advises a maxReceiveCount of at least 5",
        ),
        (
            {"bedrock_requests_per_minute": 2, "worker_max_concurrency": 3},
            r"key 'worker_max_concurrency': 3 is more than bedrock_requests_per_minute \(2\)",
        ),
        (
            {"bedrock_requests_per_minute": 0},
            r"key 'bedrock_requests_per_minute': Input should be greater than or equal to 1",
        ),
        (
            {"queue_age_alarm_seconds": 4 * 24 * 3600},
            r"key 'queue_age_alarm_seconds': Input should be less than 345600",
        ),
    ],
)
def test_bad_settings_name_the_environment_and_the_key(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=r"^cdk.json environment 'dev': .*" + message):
        load_with("dev", **overrides)


def test_a_missing_required_key_is_named() -> None:
    settings = block()
    del settings["defaults"]["worker_timeout_seconds"]
    with pytest.raises(ConfigError, match=r"environment 'prod': key 'worker_timeout_seconds': is required"):
        load_environment(settings, "prod")


@pytest.mark.parametrize("name", ["Dev", "dev_1", "-dev", "dev-", "a-very-long-environment-name"])
def test_environment_names_must_fit_bucket_names(name: str) -> None:
    settings = block()
    settings["environments"][name] = {"region": "us-east-1"}
    with pytest.raises(ConfigError, match=re.escape(f"cdk.json environment {name!r}: key 'name'")):
        load_environment(settings, name)


def test_bucket_names_stay_within_63_characters() -> None:
    settings = block()
    settings["environments"]["abcdefghijklmnop"] = {"region": "ap-southeasternmost-1"}
    with pytest.raises(ConfigError, match="makes bucket names of 66 characters"):
        load_environment(settings, "abcdefghijklmnop")


def test_every_settings_key_is_documented_in_cdk_json_defaults() -> None:
    """cdk.json's `defaults` is the reference: every optional key appears there or in an env."""
    documented = set(block()["defaults"]) | {k for env in block()["environments"].values() for k in env}
    optional = {
        "account",
        "bedrock_region",
        "alarm_email",
        "api_key_quota_per_day",
        "api_key_callers",
        "webhook",
    }
    # api_auth "cognito" only (refused elsewhere): documented in infra/config.py and README.
    optional |= {"cognito_feature_plan", "cognito_mfa", "cognito_self_sign_up", "cognito_domain_prefix"}
    assert set(EnvironmentConfig.model_fields) - {"name"} <= documented | optional


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("stability.sd3-5-large-v1:0", (None, "stability.sd3-5-large-v1:0")),
        ("us.stability.sd3-5-large-v1:0", ("us", "stability.sd3-5-large-v1:0")),
        ("global.amazon.nova-canvas-v1:0", ("global", "amazon.nova-canvas-v1:0")),
        ("us-gov.amazon.titan-image-generator-v2:0", ("us-gov", "amazon.titan-image-generator-v2:0")),
    ],
)
def test_inference_profile_ids_are_recognised(model_id: str, expected: tuple[str | None, str]) -> None:
    assert split_inference_profile(model_id) == expected


@pytest.mark.parametrize(
    ("key", "model_id", "message"),
    [
        (
            "default_model_id",
            "stability.stable-diffusion-xl-v1",
            "end of life on Amazon Bedrock on 2025-05-20",
        ),
        ("allowed_model_ids", ["amazon.titan-image-generator-v2:0"], "end of life"),
        ("fallback_model_ids", ["us.amazon.nova-canvas-v1:0"], "end of life"),
        ("fallback_model_ids", ["meta.llama3-8b-instruct-v1:0"], "supported models"),
    ],
)
def test_a_retired_or_unknown_model_is_refused_at_synth(key: str, model_id: Any, message: str) -> None:
    block = copy.deepcopy(cdk_json_context()[CONTEXT_KEY])
    env = block["environments"]["dev"]
    env[key] = model_id
    if key == "default_model_id":
        env["allowed_model_ids"] = [model_id]
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_environment(block, "dev")


def test_fallbacks_may_not_repeat_or_name_the_default() -> None:
    block = copy.deepcopy(cdk_json_context()[CONTEXT_KEY])
    block["environments"]["dev"]["fallback_model_ids"] = ["stability.sd3-5-large-v1:0"]
    with pytest.raises(ConfigError, match="fallback_model_ids"):
        load_environment(block, "dev")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_environment_runs_sd3_5_large_with_a_live_fallback(env: str) -> None:
    config = load_environment(cdk_json_context()[CONTEXT_KEY], env)
    assert config.default_model_id == "stability.sd3-5-large-v1:0"
    assert config.fallback_model_ids and config.fallback_model_ids[0] != config.default_model_id


def test_reliability_defaults() -> None:
    defaults = block()["defaults"]
    assert defaults["max_receive_count"] == 5
    assert defaults["bedrock_requests_per_minute"] == 6
    assert defaults["queue_age_alarm_seconds"] == 3600
    for env in ENVIRONMENTS:
        config = load_environment(block(), env)
        assert config.max_receive_count >= 5
        assert config.worker_max_concurrency <= config.bedrock_requests_per_minute


@pytest.mark.parametrize(
    ("rpm", "timeout", "rate", "burst", "reserved"),
    [
        (6, 29, 0.1, 1, 3),  # the default: floor(1 + 0.1 * 29) = 3
        (2, 10, 2 / 60, 1, 2),  # floor(1 + 20 / 60) = 1, raised to the minimum of 2
        (60, 29, 1.0, 1, 30),  # floor(1 + 29) = 30
        (90, 20, 1.5, 2, 32),  # burst ceil(1.5) = 2; floor(2 + 30) = 32
    ],
)
def test_the_bedrock_quota_derivation(rpm: int, timeout: int, rate: float, burst: int, reserved: int) -> None:
    config = load_with(
        "dev", bedrock_requests_per_minute=rpm, api_timeout_seconds=timeout, worker_max_concurrency=2
    )
    assert config.sync_throttle_rate_limit == rate
    assert config.sync_throttle_burst_limit == burst
    assert config.api_reserved_concurrency == reserved
    assert 2 <= config.api_reserved_concurrency <= max(2, int(burst + rate * timeout))


def test_a_quota_below_the_minimum_worker_concurrency_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"key 'worker_max_concurrency': 2 is more than"):
        load_with("dev", bedrock_requests_per_minute=1)


def test_results_that_expire_before_their_job_records_or_messages_are_refused() -> None:
    """A result is its job's stored answer: a keyed replay reads it back for as long as the job
    record lives, a redelivery or redrive for as long as a message can (dead letters included)."""
    with pytest.raises(
        ConfigError, match=r"key 'result_expiry_days': 20 is shorter than job_ttl_days \(30\)"
    ):
        load_with("dev", result_expiry_days=20, job_ttl_days=30)
    with pytest.raises(ConfigError, match=r"a message's lifetime \(18 days"):
        load_with("dev", result_expiry_days=7, job_ttl_days=7)
