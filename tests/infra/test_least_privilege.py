"""Least privilege beyond the exact grant lists of test_functions.py, as properties that hold
for every environment and every role the stack creates:

- no role, whoever it belongs to (the functions, CDK's custom resources, API Gateway's
  CloudWatch role), can invoke a Bedrock model outside the environment's configured list, and
  none has a Bedrock action other than InvokeModel, except the lifecycle watch's role, which
  can only read (GetFoundationModel) the configured models and invoke none;
- the api function cannot read (or list) the output bucket outside the API door's own
  results (jobs/), and every URL the API hands out is one its role can sign for;
- a presigned upload admits one key under uploads/, an image content type and at most the
  size cap, and expires; presigned downloads expire.

moto accepts any upload and never expires a URL, so the presigned-upload checks evaluate the
signed POST policy by S3's rules (and check the signature covers exactly that policy)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from img2img.catalog import base_model_id, split_inference_profile
from tests.handlers.api_events import FakeContext, api_event
from tests.handlers.sqs_events import s3_notification, sqs_event
from tests.handlers.world import INPUT, OUTPUT, World, aws, aws_env, world  # noqa: F401 - fixtures
from tests.infra.conftest import ENVIRONMENTS, Synth
from tests.infra.templates import Grant, by_type, flatten, function_role_id, render, role_grants

PROFILES = {
    "allowed_model_ids": ["us.stability.sd3-5-large-v1:0", "stability.stable-image-ultra-v1:1"],
    "default_model_id": "us.stability.sd3-5-large-v1:0",
}


def every_role_grants(template: dict[str, Any]) -> dict[str, set[Grant]]:
    """Each IAM role's grants: inline, attached AWS::IAM::Policy / ManagedPolicy documents."""
    roles = {role_id: role_grants(template, role_id) for role_id in by_type(template, "AWS::IAM::Role")}
    for resource in by_type(template, "AWS::IAM::ManagedPolicy").values():
        for ref in resource["Properties"].get("Roles", []):
            roles[ref["Ref"]] |= flatten(resource["Properties"]["PolicyDocument"])
    return roles


def statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for role in by_type(template, "AWS::IAM::Role").values():
        for policy in role["Properties"].get("Policies", []):
            found.extend(policy["PolicyDocument"]["Statement"])
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for policy in by_type(template, kind).values():
            found.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return found


def allowed_model_arns(s: Synth) -> tuple[set[str], set[tuple[str, str]]]:
    """What the configuration allows: foundation-model and inference-profile ARNs in the model
    region, and (routed model ARN, profile ARN) pairs a profile may reach."""
    direct: set[str] = set()
    routed: set[tuple[str, str]] = set()
    region = s.config.model_region
    for model_id in s.config.configured_model_ids:  # allowed, then fallbacks
        geography, base = split_inference_profile(model_id)
        if geography is None:
            direct.add(f"arn:aws:bedrock:{region}::foundation-model/{model_id}")
        else:
            profile = f"arn:aws:bedrock:{region}:<AWS::AccountId>:inference-profile/{model_id}"
            direct.add(profile)
            routed.add((f"arn:aws:bedrock:*::foundation-model/{base}", profile))
    return direct, routed


def check_no_model_outside_the_list(s: Synth) -> None:
    direct, routed = allowed_model_arns(s)
    for statement in statements(s.template):
        assert "NotAction" not in statement and "NotResource" not in statement, statement
    invoking: dict[str, set[Grant]] = {}
    reading: dict[str, set[Grant]] = {}
    for role_id, grants in every_role_grants(s.template).items():
        for grant in grants:
            if grant.effect != "Allow":
                continue
            assert grant.action not in ("*", "bedrock:*"), (role_id, grant)
            if not grant.action.lower().startswith("bedrock:"):
                continue
            if grant.action in ("bedrock:GetFoundationModel", "bedrock:GetInferenceProfile"):
                reading.setdefault(role_id, set()).add(grant)
                continue
            assert grant.action == "bedrock:InvokeModel", (role_id, grant)
            invoking.setdefault(role_id, set()).add(grant)
            if grant.condition:
                condition = json.loads(grant.condition)
                [profile] = condition["StringEquals"]["bedrock:InferenceProfileArn"]
                assert (grant.resource, profile) in routed, (role_id, grant)
            else:
                assert grant.resource in direct, (role_id, grant)
    functions = {
        function_role_id(s.template, s.logical_id(f))
        for f in (s.stack.functions.api, s.stack.functions.worker)
    }
    assert set(invoking) == functions  # only the two functions' roles can invoke at all
    for role_id in functions:
        reachable = {g.resource for g in invoking[role_id] if not g.condition}
        assert reachable == direct  # every configured model, and no other
    # The lifecycle watch reads the configured models' state, by base id, unconditionally.
    watch = function_role_id(s.template, s.logical_id(s.stack.lifecycle.function))
    bases = {base_model_id(m) for m in s.config.configured_model_ids}
    assert set(reading) == {watch}
    profiles = {m for m in s.config.configured_model_ids if base_model_id(m) != m}
    assert {(g.action, g.resource, g.condition) for g in reading[watch]} == {
        ("bedrock:GetFoundationModel", f"arn:aws:bedrock:{s.config.model_region}::foundation-model/{b}", "")
        for b in bases
    } | {
        (
            "bedrock:GetInferenceProfile",
            f"arn:aws:bedrock:{s.config.model_region}:<AWS::AccountId>:inference-profile/{p}",
            "",
        )
        for p in profiles
    }


@pytest.mark.infra
def test_no_role_can_invoke_a_model_outside_the_configured_list(env_synth: Synth) -> None:
    check_no_model_outside_the_list(env_synth)
    for role in by_type(env_synth.template, "AWS::IAM::Role").values():
        for arn in role["Properties"].get("ManagedPolicyArns", []):
            assert "Bedrock" not in render(arn), arn  # e.g. AmazonBedrockFullAccess


@pytest.mark.infra
def test_inference_profiles_reach_their_model_only_through_the_profile(synth: Callable[..., Synth]) -> None:
    check_no_model_outside_the_list(synth("dev", **PROFILES))


def api_output_grants(s: Synth) -> set[Grant]:
    api_role = function_role_id(s.template, s.logical_id(s.stack.functions.api))
    out = f"<{s.logical_id(s.stack.storage.output_bucket)}.Arn>"
    return {
        g for g in role_grants(s.template, api_role) if g.resource == out or g.resource.startswith(f"{out}/")
    }


@pytest.mark.infra
def test_the_api_function_cannot_read_the_output_bucket_beyond_its_own_results(env_synth: Synth) -> None:
    out = f"<{env_synth.logical_id(env_synth.stack.storage.output_bucket)}.Arn>"
    grants = api_output_grants(env_synth)
    assert grants, "the api function reads its results back"
    # Not results/, not the bucket (List*): its own results, whose object metadata is the stored
    # answer a keyed retry finishes from.
    assert {g.resource for g in grants} == {f"{out}/jobs/*"}
    assert {g.action for g in grants} <= {"s3:GetObject", "s3:PutObject"}


@pytest.mark.infra
def test_the_api_function_cannot_read_what_is_dropped_under_inbox(env_synth: Synth) -> None:
    """Images dropped under inbox/ are their dropper's: no API caller can run one, because the
    api role may not read there at all (domain/caller.py refuses such keys first)."""
    api_role = function_role_id(env_synth.template, env_synth.logical_id(env_synth.stack.functions.api))
    inp = f"<{env_synth.logical_id(env_synth.stack.storage.input_bucket)}.Arn>"
    readable = {
        g.resource.removeprefix(f"{inp}/")
        for g in role_grants(env_synth.template, api_role)
        if g.resource.startswith(f"{inp}/") and g.action.startswith("s3:Get")
    }
    assert readable == {"api/*", "uploads/*"}


# --- what the API hands out ----------------------------------------------------------------------


def readable_prefixes(s: Synth) -> set[str]:
    """Key prefixes of the output bucket the api role may s3:GetObject."""
    out = f"<{s.logical_id(s.stack.storage.output_bucket)}.Arn>/"
    return {
        g.resource.removeprefix(out).removesuffix("*")
        for g in api_output_grants(s)
        if g.action == "s3:GetObject"
    }


def handed_out_keys(payload: dict[str, Any]) -> list[str]:
    keys = []
    for name in ("image", "metadata"):
        if "url" in payload.get(name, {}):
            url = urlsplit(payload[name]["url"])
            assert url.path.lstrip("/").startswith(f"{OUTPUT}/") or url.netloc.startswith(f"{OUTPUT}.")
            keys.append(url.path.lstrip("/").removeprefix(f"{OUTPUT}/"))
    return keys


@pytest.mark.infra
def test_every_url_the_api_hands_out_is_one_its_role_may_read(
    synth: Callable[..., Synth],
    world: World,  # noqa: F811 - the fixture imported above
) -> None:
    """A presigned URL is signed with the api role's credentials: S3 answers 403 to any key
    outside what that role may read. Both doors' jobs can be looked up by id."""
    from img2img.handlers import api, worker
    from tests.fakes import png_bytes

    prefixes = readable_prefixes(synth("dev"))
    body = {"text_prompts": [{"text": "x"}], "init_image": base64.b64encode(png_bytes(64, 64)).decode()}
    sync = json.loads(api.handler(api_event("POST", "/v1/image-to-image", body), FakeContext())["body"])
    put = world.s3.put_object(
        Bucket=INPUT, Key="inbox/a.png", Body=png_bytes(64, 64), Metadata={"prompt": "x"}
    )
    event = s3_notification(
        INPUT, "inbox/a.png", version_id=put.get("VersionId"), etag=put["ETag"].strip('"')
    )
    worker.handler(sqs_event(event), FakeContext("img2img-unit-worker"))
    s3_job = world.read_json(OUTPUT, "results/a.png.json")["job_id"]
    handed: dict[str, list[str]] = {}
    for door, job_id in (("api", sync["job_id"]), ("s3", s3_job)):
        view = json.loads(api.handler(api_event("GET", f"/v1/jobs/{job_id}"), FakeContext())["body"])
        assert view["status"] == "SUCCEEDED"
        handed[door] = handed_out_keys(view)
    handed["api-sync"] = handed_out_keys(sync)
    assert handed["api"] and handed["api-sync"]
    unreadable = {
        door: [k for k in keys if not k.startswith(tuple(prefixes))] for door, keys in handed.items()
    }
    assert {door: keys for door, keys in unreadable.items() if keys} == {}


# --- presigned uploads and downloads ---------------------------------------------------------------


def sigv4_signature(secret: str, date: str, region: str, string_to_sign: str) -> str:
    key = f"AWS4{secret}".encode()
    for part in (date, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def s3_admits(policy: dict[str, Any], form: dict[str, str], bucket: str, size: int, now: dt.datetime) -> bool:
    """S3's POST policy rules: not expired; every condition met by the form (exact matches,
    starts-with, content-length-range); every form field named by a condition."""
    expires = dt.datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    if now >= expires:
        return False
    values = {k.lower(): v for k, v in {**form, "bucket": bucket}.items()}
    named = {"bucket", "policy", "x-amz-signature", "file"}
    for condition in policy["conditions"]:
        if isinstance(condition, dict):
            ((name, expected),) = condition.items()
            named.add(name.lower())
            if values.get(name.lower()) != expected:
                return False
        elif condition[0] == "content-length-range":
            if not condition[1] <= size <= condition[2]:
                return False
        else:
            op, name, expected = condition
            field = name.lstrip("$").lower()
            named.add(field)
            value = values.get(field, "")
            if (op == "eq" and value != expected) or (op == "starts-with" and not value.startswith(expected)):
                return False
    return set(values) <= named


@pytest.mark.unit
@pytest.mark.parametrize("content_type", ["image/png", "image/jpeg", "image/webp"])
def test_a_presigned_upload_admits_one_image_key_within_the_cap_until_it_expires(
    world: World,  # noqa: F811 - the fixture imported above
    content_type: str,
) -> None:
    from img2img.handlers import api

    reply = api.handler(api_event("POST", "/v1/uploads", {"content_type": content_type}), FakeContext())
    assert reply["statusCode"] == 201
    ticket = json.loads(reply["body"])
    form = dict(ticket["upload"]["fields"])
    cap, expires_in = ticket["max_bytes"], ticket["expires_in"]
    assert cap == world.settings.upload_cap and expires_in == world.settings.presign_expiry_seconds
    key = ticket["init_image_s3_key"]
    assert form["key"] == key and key.startswith("uploads/") and ".." not in key
    # The signature covers exactly this policy (so no field of it can be changed by the caller).
    credential = form["x-amz-credential"].split("/")
    assert form["x-amz-signature"] == sigv4_signature(
        os.environ["AWS_SECRET_ACCESS_KEY"], credential[1], credential[2], form["policy"]
    )
    policy = json.loads(base64.b64decode(form["policy"]))
    now = dt.datetime.now(dt.UTC)
    expires = dt.datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert dt.timedelta(seconds=expires_in - 120) <= expires - now <= dt.timedelta(seconds=expires_in + 5)

    assert s3_admits(policy, form, INPUT, 1, now)
    assert s3_admits(policy, form, INPUT, cap, now)
    assert not s3_admits(policy, form, INPUT, cap + 1, now), "over the size cap"
    assert not s3_admits(policy, form, INPUT, 0, now), "an empty file"
    for name, value in (
        ("key", "inbox/other.png"),
        ("key", "results/x.png"),
        ("key", key + ".html"),
        ("Content-Type", "text/html"),
        ("Content-Type", "image/svg+xml"),
    ):
        assert not s3_admits(policy, {**form, name: value}, INPUT, 10, now), (name, value)
    assert not s3_admits(policy, form, "another-bucket", 10, now)
    assert not s3_admits(policy, {**form, "acl": "public-read"}, INPUT, 10, now), "an unsigned extra field"
    assert not s3_admits(policy, form, INPUT, 10, expires), "expired"


@pytest.mark.unit
@pytest.mark.parametrize(
    "content_type", ["image/gif", "image/svg+xml", "text/html", "application/octet-stream"]
)
def test_uploads_are_offered_for_still_images_only(
    world: World,  # noqa: F811 - the fixture imported above
    content_type: str,
) -> None:
    from img2img.handlers import api

    reply = api.handler(api_event("POST", "/v1/uploads", {"content_type": content_type}), FakeContext())
    assert reply["statusCode"] == 400
    assert json.loads(reply["body"])["error"]["details"][0]["field"] == "content_type"


@pytest.mark.unit
def test_presigned_downloads_expire(world: World) -> None:  # noqa: F811 - the fixture imported above
    from img2img.handlers import api
    from tests.fakes import png_bytes

    body = {"text_prompts": [{"text": "x"}], "init_image": base64.b64encode(png_bytes(64, 64)).decode()}
    payload = json.loads(api.handler(api_event("POST", "/v1/image-to-image", body), FakeContext())["body"])
    for name in ("image", "metadata"):
        query = parse_qs(urlsplit(payload[name]["url"]).query)
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]  # SigV4: the expiry is signed
        assert int(query["X-Amz-Expires"][0]) == world.settings.presign_expiry_seconds
        assert "X-Amz-Signature" in query


@pytest.mark.infra
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_environment_bounds_presigned_urls(synth: Callable[..., Synth], env: str) -> None:
    """URLs (and upload tickets) live an hour by default and never more than a day."""
    assert 60 <= synth(env).config.presign_expiry_seconds <= 24 * 3600
