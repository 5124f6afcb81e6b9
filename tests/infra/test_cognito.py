"""api_auth "cognito" (infra/auth.py, infra/api.py): the user pool's security settings, the
page's public PKCE client and managed login, which routes need a token, CORS for the page's
own origin only, what the api function tells the page, the outputs, and the config's checks."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from img2img import vocabulary
from infra.app import build_app
from infra.config import ConfigError, load_environment
from infra.nag import DRY_RUN_CONTEXT_KEY
from tests.infra.conftest import Synth, context_with, offline
from tests.infra.templates import by_type, render
from tests.infra.test_api import methods
from tests.infra.test_nag_and_lint import acknowledgements, violations

pytestmark = pytest.mark.infra

PAGE_URL = "https://<ApiRestApi>.execute-api.<AWS::Region>.<AWS::URLSuffix>/dev/"
ORIGIN = "https://<ApiRestApi>.execute-api.<AWS::Region>.<AWS::URLSuffix>"


@pytest.fixture(scope="module")
def cognito(synth: Callable[..., Synth]) -> Synth:
    return synth("dev", api_auth="cognito")


def only(s: Synth, resource_type: str) -> dict[str, Any]:
    (found,) = by_type(s.template, resource_type).values()
    return dict(found)


def readable(value: Any) -> str:
    """render(), without the hash CDK appends to the REST API's logical id."""
    return re.sub(r"<ApiRestApi[0-9A-F]{8}>", "<ApiRestApi>", render(value))


def test_the_user_pool_has_the_security_settings_aws_recommends(cognito: Synth) -> None:
    pool = only(cognito, "AWS::Cognito::UserPool")
    props = pool["Properties"]
    assert props["UserPoolTier"] == "PLUS"
    assert props["UserPoolAddOns"] == {"AdvancedSecurityMode": "ENFORCED"}
    assert props["MfaConfiguration"] == "ON" and props["EnabledMfas"] == ["SOFTWARE_TOKEN_MFA"]
    assert props["Policies"]["PasswordPolicy"] == {
        "MinimumLength": 12,
        "RequireLowercase": True,
        "RequireNumbers": True,
        "RequireSymbols": True,
        "RequireUppercase": True,
        "TemporaryPasswordValidityDays": 3,
    }
    assert props["AdminCreateUserConfig"] == {"AllowAdminCreateUserOnly": True}  # no self sign-up
    assert props["AccountRecoverySetting"] == {
        "RecoveryMechanisms": [{"Name": "verified_email", "Priority": 1}]
    }
    assert props["UsernameAttributes"] == ["email"]
    # dev destroys its data: no deletion protection, deleted with the stack.
    assert props["DeletionProtection"] == "INACTIVE" and pool["DeletionPolicy"] == "Delete"


def test_a_retaining_environment_protects_its_user_pool(synth: Callable[..., Synth]) -> None:
    pool = only(synth("prod", api_auth="cognito"), "AWS::Cognito::UserPool")
    assert pool["Properties"]["DeletionProtection"] == "ACTIVE"
    assert pool["DeletionPolicy"] == "RetainExceptOnCreate" and pool["UpdateReplacePolicy"] == "Retain"


def test_the_config_keys_change_plan_mfa_and_sign_up(synth: Callable[..., Synth]) -> None:
    s = synth(
        "dev",
        api_auth="cognito",
        cognito_feature_plan="essentials",
        cognito_mfa="optional",
        cognito_self_sign_up=True,
        cognito_domain_prefix="my-img2img",
    )
    props = only(s, "AWS::Cognito::UserPool")["Properties"]
    assert props["UserPoolTier"] == "ESSENTIALS" and "UserPoolAddOns" not in props
    assert props["MfaConfiguration"] == "OPTIONAL"
    assert props["AdminCreateUserConfig"] == {"AllowAdminCreateUserOnly": False}
    assert only(s, "AWS::Cognito::UserPoolDomain")["Properties"]["Domain"] == "my-img2img"
    assert violations(s.stack) == []  # COG2 and COG8 acknowledged, naming the keys


def test_the_page_client_is_public_and_uses_the_code_grant_to_the_page(cognito: Synth) -> None:
    props = only(cognito, "AWS::Cognito::UserPoolClient")["Properties"]
    assert props["GenerateSecret"] is False
    assert props["AllowedOAuthFlows"] == ["code"] and props["AllowedOAuthFlowsUserPoolClient"] is True
    assert props["AllowedOAuthScopes"] == list(vocabulary.SIGN_IN_SCOPES)
    assert [readable(u) for u in props["CallbackURLs"]] == [PAGE_URL]
    assert [readable(u) for u in props["LogoutURLs"]] == [PAGE_URL]
    assert props["SupportedIdentityProviders"] == ["COGNITO"]
    assert props["PreventUserExistenceErrors"] == "ENABLED"
    assert "ALLOW_USER_PASSWORD_AUTH" not in props["ExplicitAuthFlows"]
    domain = only(cognito, "AWS::Cognito::UserPoolDomain")["Properties"]
    assert domain["ManagedLoginVersion"] == 2
    assert render(domain["Domain"]) == "img2img-dev-<AWS::AccountId>"
    branding = only(cognito, "AWS::Cognito::ManagedLoginBranding")["Properties"]
    assert branding["UseCognitoProvidedValues"] is True


def test_every_route_but_the_open_ones_needs_the_users_token(cognito: Synth) -> None:
    authorizer_id, authorizer = next(iter(by_type(cognito.template, "AWS::ApiGateway::Authorizer").items()))
    assert authorizer["Properties"]["Type"] == "COGNITO_USER_POOLS"
    assert authorizer["Properties"]["IdentitySource"] == "method.request.header.Authorization"
    open_routes = {(route.method, route.path) for route in vocabulary.OPEN_ROUTES}
    found = methods(cognito)
    assert set(found) == {(route.method, route.path) for route in vocabulary.ROUTES}
    for route, props in found.items():
        if route in open_routes:
            assert props["AuthorizationType"] == "NONE" and "AuthorizerId" not in props, route
        else:
            assert props["AuthorizationType"] == "COGNITO_USER_POOLS", route
            assert props["AuthorizerId"] == {"Ref": authorizer_id}, route
            assert "AuthorizationScopes" not in props, route  # ID tokens, not access tokens
        assert not props.get("ApiKeyRequired"), route
    assert open_routes == {
        ("GET", "/"),
        ("GET", "/v1/docs"),
        ("GET", "/v1/openapi.json"),
        ("GET", "/v1/auth-config"),
    }
    assert not any(m == "OPTIONS" for m, _ in found)  # the page is served by the API: no CORS needed


def test_a_refused_token_answers_in_the_services_error_shape(cognito: Synth) -> None:
    responses = {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in by_type(cognito.template, "AWS::ApiGateway::GatewayResponse").values()
    }
    template = responses["UNAUTHORIZED"]["ResponseTemplates"]["application/json"]
    rendered = template.replace("$context.error.messageString", '"Unauthorized"')
    assert json.loads(rendered) == {
        "error": {"code": "unauthorized", "message": "Unauthorized", "details": []}
    }


def test_s3_allows_the_pages_origin_only(cognito: Synth, synth: Callable[..., Synth]) -> None:
    rules = {}
    for logical_id, bucket in by_type(cognito.template, "AWS::S3::Bucket").items():
        cors = bucket["Properties"].get("CorsConfiguration")
        if cors:
            rules[logical_id] = cors["CorsRules"]
    assert len(rules) == 2
    input_id = cognito.logical_id(cognito.stack.storage.input_bucket)
    output_id = cognito.logical_id(cognito.stack.storage.output_bucket)
    (upload,) = rules[input_id]
    assert upload["AllowedMethods"] == ["POST"]
    assert [readable(o) for o in upload["AllowedOrigins"]] == [ORIGIN]
    (read,) = rules[output_id]
    assert read["AllowedMethods"] == ["GET", "HEAD"]
    assert [readable(o) for o in read["AllowedOrigins"]] == [ORIGIN]
    # The other modes have no page that signs in: no CORS at all.
    dev = synth("dev")
    assert not any(
        "CorsConfiguration" in b["Properties"] for b in by_type(dev.template, "AWS::S3::Bucket").values()
    )


def test_the_api_function_tells_the_page_where_to_sign_in(
    cognito: Synth, synth: Callable[..., Synth]
) -> None:
    api_id = cognito.logical_id(cognito.stack.functions.api)
    env = cognito.template["Resources"][api_id]["Properties"]["Environment"]["Variables"]
    assert env["IMG2IMG_API_AUTH"] == "cognito"
    assert readable(env["IMG2IMG_AUTH_REDIRECT_URI"]) == PAGE_URL
    assert render(env["IMG2IMG_AUTH_CLIENT_ID"]).startswith("<SignInUserPoolPageClient")
    assert render(env["IMG2IMG_AUTH_BASE_URL"]).endswith(".auth.us-west-2.amazoncognito.com")
    worker = cognito.template["Resources"][cognito.logical_id(cognito.stack.functions.worker)]
    assert not any(k.startswith("IMG2IMG_AUTH") for k in worker["Properties"]["Environment"]["Variables"])
    dev = synth("dev")
    dev_env = dev.template["Resources"][dev.logical_id(dev.stack.functions.api)]["Properties"]["Environment"]
    assert dev_env["Variables"]["IMG2IMG_API_AUTH"] == "iam"


def test_outputs_say_how_to_add_users(cognito: Synth) -> None:
    outputs = cognito.template["Outputs"]
    assert {"UserPoolId", "UserPoolClientId", "SignInUrl", "PageUrl"} <= set(outputs)
    assert outputs["ApiAuthMode"]["Value"] == "cognito"
    assert "admin-create-user" in outputs["UserPoolId"]["Description"]


def test_every_cognito_acknowledgement_matches_a_real_finding(code_asset: Any) -> None:
    overrides = {"api_auth": "cognito", "cognito_feature_plan": "essentials", "cognito_mfa": "off"}
    with offline():
        _, stack = build_app(
            "dev", context=context_with("dev", overrides, extra={DRY_RUN_CONTEXT_KEY: True}), nag=False
        )
    acks = acknowledgements(stack)
    findings = violations(stack)
    cognito_acks = [(p, rule) for p, rule, _ in acks if "COG" in rule or "APIG4" in rule]
    assert {rule for _, rule in cognito_acks} == {
        "AwsSolutions-COG2",
        "AwsSolutions-COG8",
        "AwsSolutions-APIG4",
        "AwsSolutions-COG4",
    }
    for path, rule in cognito_acks:
        assert any(
            name == rule and any(p == path or p.startswith(f"{path}/") for p in paths)
            for name, paths in findings
        ), (path, rule)
    # Only the open routes are acknowledged as open.
    opened = {p for p, rule in cognito_acks if rule == "AwsSolutions-APIG4"}
    assert len(opened) == len(vocabulary.OPEN_ROUTES)


def cdk_json_block(**dev: Any) -> dict[str, Any]:
    from infra.app import cdk_json_context

    block = json.loads(json.dumps(cdk_json_context()["img2img"]))
    block["environments"]["dev"].update(dev)
    return block


@pytest.mark.parametrize(
    ("dev", "message"),
    [
        ({"cognito_mfa": "off"}, "key 'cognito_mfa': only applies when api_auth is 'cognito'"),
        ({"api_auth": "cognito", "cognito_mfa": "sometimes"}, "key 'cognito_mfa'"),
        ({"api_auth": "cognito", "cognito_domain_prefix": "my-cognito-app"}, "refuses prefixes"),
        ({"api_auth": "cognito", "cognito_domain_prefix": "Upper"}, "key 'cognito_domain_prefix'"),
        ({"api_auth": "cognito", "cognito_self_sign_up": "yes"}, "key 'cognito_self_sign_up'"),
        ({"api_auth": "oauth"}, "key 'api_auth'"),
    ],
)
def test_config_refuses_what_cannot_work(dev: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_environment(cdk_json_block(**dev), "dev")


def test_config_takes_the_cognito_defaults() -> None:
    config = load_environment(cdk_json_block(api_auth="cognito"), "dev")
    assert (config.cognito_feature_plan, config.cognito_mfa, config.cognito_self_sign_up) == (
        "plus",
        "required",
        False,
    )
