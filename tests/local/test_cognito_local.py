"""api_auth "cognito" in local mode (local/cognito.py): the front checks tokens as API Gateway's
Cognito user pools authorizer does, against a user pool in moto, and puts the claims where
API Gateway puts them; the EMULATED managed login runs the code + PKCE flow; and the page, in
a real browser, signs in, uploads a source over 6 MB, generates and shows the result."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from img2img import vocabulary
from img2img.domain.caller import Caller
from img2img_local import resources as r
from img2img_local.api_front import build_proxy_event, needs_token
from img2img_local.cognito import (
    CLAIM_DATE_FORMAT,
    LocalSignIn,
    TokenCheck,
    Unauthorized,
    as_authorizer_claims,
)
from img2img_local.runner import LocalStack, start_local
from tests.imagegen import png
from tests.local.conftest import EVENTS_DIR

pytestmark = [pytest.mark.local, pytest.mark.timeout(300)]

USER = "user@example.com"
PASSWORD = "Correct-h0rse-battery"
# What the stack's UNAUTHORIZED gateway response sends (infra/api.py): API Gateway's own
# message, "Unauthorized" (its default body is {"message":"Unauthorized"},
# https://docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html),
# in the service's error shape.
UNAUTHORIZED = {"error": {"code": "unauthorized", "message": "Unauthorized", "details": []}}


def add_user(stack: LocalStack, pool_id: str, username: str = USER, password: str = PASSWORD) -> None:
    idp = stack.client("cognito-idp")
    idp.admin_create_user(
        UserPoolId=pool_id,
        Username=username,
        MessageAction="SUPPRESS",
        UserAttributes=[{"Name": "email", "Value": username}, {"Name": "email_verified", "Value": "true"}],
    )
    idp.admin_set_user_password(UserPoolId=pool_id, Username=username, Password=password, Permanent=True)


def moto_id_token(stack: LocalStack, pool_id: str, client_id: str, username: str = USER) -> str:
    answer = stack.client("cognito-idp").admin_initiate_auth(
        UserPoolId=pool_id,
        ClientId=client_id,
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": PASSWORD},
    )
    return str(answer["AuthenticationResult"]["IdToken"])


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with start_local(api_port=0, aws_port=0, bedrock_port=0, api_auth="cognito") as running:
        assert running.sign_in is not None
        add_user(running, running.sign_in.user_pool_id)
        yield running


@pytest.fixture(scope="module")
def sign_in(stack: LocalStack) -> LocalSignIn:
    assert stack.sign_in is not None
    return stack.sign_in


@pytest.fixture(scope="module")
def token(stack: LocalStack, sign_in: LocalSignIn) -> str:
    return moto_id_token(stack, sign_in.user_pool_id, sign_in.client_id)


def get(stack: LocalStack, path: str, token: str | None = None, **headers: str) -> requests.Response:
    if token is not None:
        headers[vocabulary.AUTHORIZATION_HEADER] = token
    return requests.get(stack.api_url + path, headers=headers, timeout=30)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def moto_signed(claims: dict[str, Any]) -> str:
    """A token signed with moto's own key (the one its JWKS publishes): only the claims differ
    from what moto issues."""
    from joserfc import jwt
    from joserfc.jwk import RSAKey
    from moto.cognitoidp.models import load_resource

    key = RSAKey.import_key(load_resource("cognitoidp/resources/jwks-private.json"))
    return str(jwt.encode({"kid": "dummy", "alg": "RS256"}, claims, key))


# --- the authorizer's checks ----------------------------------------------------------------


def test_a_good_token_lets_the_user_in_and_names_them_as_the_job_owner(
    stack: LocalStack, sign_in: LocalSignIn, token: str
) -> None:
    health = get(stack, "/v1/health", token)
    assert health.status_code == 200, health.text
    upload = requests.post(
        stack.api_url + "/v1/uploads",
        json={"content_type": "image/png"},
        headers={vocabulary.AUTHORIZATION_HEADER: token},
        timeout=30,
    )
    assert upload.status_code == 201, upload.text
    sub = TokenCheck(sign_in).claims([("Authorization", token)])["sub"]
    assert upload.json()["init_image_s3_key"].startswith(Caller("user", sub).upload_prefix)


@pytest.mark.parametrize(
    "route", [r for r in vocabulary.ROUTES if r not in vocabulary.OPEN_ROUTES], ids=lambda r: r.path
)
def test_every_api_route_refuses_a_request_without_a_token(
    stack: LocalStack, route: vocabulary.Route
) -> None:
    path = vocabulary.job_path("abc") if "{job_id}" in route.path else route.path
    answer = requests.request(route.method, stack.api_url + path, json={}, timeout=30)
    assert (answer.status_code, answer.json()) == (401, UNAUTHORIZED)


@pytest.mark.parametrize("route", vocabulary.OPEN_ROUTES, ids=lambda r: r.path)
def test_the_page_docs_and_sign_in_settings_need_no_token(stack: LocalStack, route: vocabulary.Route) -> None:
    assert get(stack, route.path).status_code == 200


def test_the_page_learns_where_to_sign_in(stack: LocalStack, sign_in: LocalSignIn) -> None:
    config = get(stack, vocabulary.AUTH_CONFIG.path).json()
    assert config == {
        "api_auth": "cognito",
        "sign_in": {
            "authorize_url": f"{stack.api_url}{r.EMULATED_AUTH_PREFIX}/oauth2/authorize",
            "token_url": f"{stack.api_url}{r.EMULATED_AUTH_PREFIX}/oauth2/token",
            "logout_url": f"{stack.api_url}{r.EMULATED_AUTH_PREFIX}/logout",
            "client_id": sign_in.client_id,
            "redirect_uri": f"{stack.api_url}/",
            "scopes": "openid email",
        },
    }


def test_an_expired_token_is_refused(stack: LocalStack, sign_in: LocalSignIn, token: str) -> None:
    claims = TokenCheck(sign_in).claims([("Authorization", token)])
    expired = moto_signed({**claims, "iat": claims["iat"] - 7200, "exp": int(time.time()) - 60})
    assert (get(stack, "/v1/health", expired).status_code, get(stack, "/v1/health", expired).json()) == (
        401,
        UNAUTHORIZED,
    )
    # The same token an hour earlier was good: only the expiry refused it.
    TokenCheck(sign_in, clock=lambda: time.time() - 3600).claims([("Authorization", expired)])
    with pytest.raises(Unauthorized, match="expired"):
        TokenCheck(sign_in, clock=lambda: claims["exp"] + 1).claims([("Authorization", token)])


def test_a_token_for_another_app_client_is_refused(stack: LocalStack, sign_in: LocalSignIn) -> None:
    other = stack.client("cognito-idp").create_user_pool_client(
        UserPoolId=sign_in.user_pool_id,
        ClientName="another-app",
        ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]
    foreign = moto_id_token(stack, sign_in.user_pool_id, other["ClientId"])
    assert get(stack, "/v1/health", foreign).status_code == 401
    with pytest.raises(Unauthorized, match="another app client"):
        TokenCheck(sign_in).claims([("Authorization", foreign)])


def test_a_token_from_another_user_pool_is_refused(stack: LocalStack, sign_in: LocalSignIn) -> None:
    """moto signs every pool's tokens with one key, so the signature verifies: `iss` refuses it."""
    idp = stack.client("cognito-idp")
    pool = idp.create_user_pool(PoolName="another-pool", UsernameAttributes=["email"])["UserPool"]
    client = idp.create_user_pool_client(
        UserPoolId=pool["Id"], ClientName="x", ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH"]
    )["UserPoolClient"]
    add_user(stack, pool["Id"])
    foreign = moto_id_token(stack, pool["Id"], client["ClientId"])
    assert get(stack, "/v1/health", foreign).status_code == 401
    with pytest.raises(Unauthorized, match="another user pool"):
        TokenCheck(sign_in).claims([("Authorization", foreign)])
    # Even with this client's id as its audience.
    claims = json.loads(base64.urlsafe_b64decode(foreign.split(".")[1] + "=="))
    with pytest.raises(Unauthorized, match="another user pool"):
        TokenCheck(sign_in).claims([("Authorization", moto_signed({**claims, "aud": sign_in.client_id}))])


def test_a_tampered_token_is_refused(stack: LocalStack, sign_in: LocalSignIn, token: str) -> None:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    someone_else = b64url(json.dumps({**claims, "sub": "someone-else"}).encode())
    flipped = signature[:-4] + ("AAAA" if not signature.endswith("AAAA") else "BBBB")
    unsigned = b64url(json.dumps({"alg": "none", "kid": "dummy"}).encode())
    for bad in (
        f"{header}.{someone_else}.{signature}",
        f"{header}.{payload}.{flipped}",
        f"{unsigned}.{payload}.",
    ):
        assert (get(stack, "/v1/health", bad).status_code, get(stack, "/v1/health", bad).json()) == (
            401,
            UNAUTHORIZED,
        ), bad


@pytest.mark.parametrize(
    "value",
    ["", "x y", "Bearer", "not-a-jwt", "a.b.c", "x" * 20000, "eyJhbGciOiJSUzI1NiJ9.e30.", "\u00e9t\u00e9"],
    ids=["empty", "two-words", "bearer-alone", "word", "three-parts", "huge", "no-signature", "non-ascii"],
)
def test_a_missing_or_malformed_token_is_a_401_never_a_5xx(stack: LocalStack, value: str) -> None:
    answer = requests.get(
        stack.api_url + "/v1/health", headers={"Authorization": value.encode("utf-8")}, timeout=30
    )
    assert (answer.status_code, answer.json()) == (401, UNAUTHORIZED)


def test_an_access_token_is_not_an_id_token(stack: LocalStack, sign_in: LocalSignIn) -> None:
    answer = stack.client("cognito-idp").admin_initiate_auth(
        UserPoolId=sign_in.user_pool_id,
        ClientId=sign_in.client_id,
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": USER, "PASSWORD": PASSWORD},
    )
    access = answer["AuthenticationResult"]["AccessToken"]
    with pytest.raises(Unauthorized, match="not an ID token"):
        TokenCheck(sign_in).claims([("Authorization", access)])


# --- the event the function gets --------------------------------------------------------------


def test_claims_reach_the_function_where_api_gateway_puts_them(sign_in: LocalSignIn, token: str) -> None:
    """The documented shape (tests/events/apigw_get_job_cognito.json and its .md): every claim
    a string, dates spelled out, no AWS principal in identity."""
    from img2img_local.api_front import HttpRequest

    documented = json.loads((EVENTS_DIR / "apigw_get_job_cognito.json").read_text())
    claims = TokenCheck(sign_in).claims([("Authorization", token)])
    request = HttpRequest("GET", "/v1/jobs/abc", "", [("Authorization", token)], b"", "127.0.0.1", 3000)
    event = build_proxy_event(request, claims=claims)
    context, expected = event["requestContext"], documented["requestContext"]
    assert set(context) == set(expected)
    assert set(context["identity"]) <= set(expected["identity"])
    assert {k for k, v in context["identity"].items() if v is not None} == {"sourceIp", "userAgent"} - {
        k for k, v in context["identity"].items() if v is None
    }
    passed = context["authorizer"]["claims"]
    assert set(passed) <= set(expected["authorizer"]["claims"]) | {"origin_jti"}
    assert all(isinstance(v, str) for v in passed.values())
    for name in ("exp", "iat"):  # the documented spelling of a date claim
        time.strptime(passed[name], CLAIM_DATE_FORMAT)
        time.strptime(expected["authorizer"]["claims"][name], CLAIM_DATE_FORMAT)
    assert passed["sub"] == claims["sub"] and passed["token_use"] == "id"
    assert as_authorizer_claims({"email_verified": True, "n": 3, "l": ["a"]}) == {
        "email_verified": "true",
        "n": "3",
        "l": '["a"]',
    }


def test_only_the_routes_that_do_work_need_a_token() -> None:
    assert not needs_token("GET", "/")
    assert not needs_token("GET", "/v1/docs")
    assert not needs_token("GET", "/v1/openapi.json")
    assert not needs_token("GET", "/v1/auth-config")
    assert needs_token("GET", "/v1/jobs/abc") and needs_token("POST", "/v1/jobs")
    assert not needs_token("GET", "/no/such/route")  # the function answers 404, as before


# --- the EMULATED managed login ---------------------------------------------------------------


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, b64url(hashlib.sha256(verifier.encode()).digest())


def authorize_params(sign_in: LocalSignIn, challenge: str, **overrides: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": sign_in.client_id,
        "redirect_uri": sign_in.redirect_uri,
        "scope": "openid email",
        "state": "s1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **overrides,
    }


def sign_in_for_code(sign_in: LocalSignIn, challenge: str, password: str = PASSWORD) -> requests.Response:
    params = authorize_params(sign_in, challenge)
    return requests.post(
        f"{sign_in.base_url}/oauth2/authorize?{urlencode(params)}",
        data={**params, "username": USER, "password": password},
        allow_redirects=False,
        timeout=30,
    )


def exchange(sign_in: LocalSignIn, code: str, verifier: str, **overrides: str) -> requests.Response:
    form = {
        "grant_type": "authorization_code",
        "client_id": sign_in.client_id,
        "code": code,
        "redirect_uri": sign_in.redirect_uri,
        "code_verifier": verifier,
        **overrides,
    }
    return requests.post(f"{sign_in.base_url}/oauth2/token", data=form, timeout=30)


def test_the_code_grant_with_pkce_gives_an_id_token_the_api_takes(
    stack: LocalStack, sign_in: LocalSignIn
) -> None:
    verifier, challenge = pkce()
    signed_in = sign_in_for_code(sign_in, challenge)
    assert signed_in.status_code == 302
    back = urlsplit(signed_in.headers["Location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == sign_in.redirect_uri
    query = parse_qs(back.query)
    assert query["state"] == ["s1"]
    tokens = exchange(sign_in, query["code"][0], verifier)
    assert tokens.status_code == 200 and tokens.json()["token_type"] == "Bearer"
    assert get(stack, "/v1/health", tokens.json()["id_token"]).status_code == 200
    # A code is good once.
    assert exchange(sign_in, query["code"][0], verifier).json() == {"error": "invalid_grant"}


def test_the_token_endpoint_refuses_what_cognito_refuses(sign_in: LocalSignIn) -> None:
    verifier, challenge = pkce()
    code = parse_qs(urlsplit(sign_in_for_code(sign_in, challenge).headers["Location"]).query)["code"][0]
    cases = {
        "unsupported_grant_type": {"grant_type": "password"},
        "invalid_client": {"client_id": "someone-else"},
    }
    for error, overrides in cases.items():
        answer = exchange(sign_in, code, verifier, **overrides)
        assert (answer.status_code, answer.json()) == (400, {"error": error})
    wrong_verifier = exchange(sign_in, code, "not-the-verifier")
    assert (wrong_verifier.status_code, wrong_verifier.json()) == (400, {"error": "invalid_grant"})
    # The failed try used the code up, as it should.
    assert exchange(sign_in, code, verifier).json() == {"error": "invalid_grant"}
    assert exchange(sign_in, "no-such-code", verifier).status_code == 400
    assert requests.post(f"{sign_in.base_url}/oauth2/token", data=b"\xff\xfe", timeout=30).status_code == 400


def test_the_sign_in_form_refuses_bad_requests_and_bad_passwords(sign_in: LocalSignIn) -> None:
    _, challenge = pkce()
    wrong = sign_in_for_code(sign_in, challenge, password="Wrong-passw0rd!")
    assert wrong.status_code == 400 and "Incorrect username or password." in wrong.text
    for overrides in (
        {"client_id": "x"},
        {"redirect_uri": "https://evil.example/"},
        {"code_challenge_method": "plain"},
        {"code_challenge": ""},
        {"response_type": "token"},
        {"scope": "openid aws.cognito.signin.user.admin"},
    ):
        params = authorize_params(sign_in, challenge, **overrides)
        answer = requests.get(f"{sign_in.base_url}/oauth2/authorize?{urlencode(params)}", timeout=30)
        assert answer.status_code == 400 and "refused" in answer.text, overrides
    assert requests.get(f"{sign_in.base_url}/oauth2/nowhere", timeout=30).status_code == 404
    back_to = urlencode({"client_id": sign_in.client_id, "logout_uri": sign_in.redirect_uri})
    logout = requests.get(
        f"{sign_in.base_url}/logout?{back_to}",
        allow_redirects=False,
        timeout=30,
    )
    assert (logout.status_code, logout.headers["Location"]) == (302, sign_in.redirect_uri)
    assert requests.get(f"{sign_in.base_url}/logout?client_id=x", timeout=30).status_code == 400


# --- the page in a real browser -----------------------------------------------------------------


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from tests.client.test_browser import chromium

    yield from chromium(tmp_path, monkeypatch)


def test_the_page_signs_in_uploads_a_large_source_and_shows_the_result(
    stack: LocalStack, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.client.test_browser import ARTIFACTS, FINAL, _image_rendered, _metadata

    source = tmp_path / "large.png"
    source.write_bytes(png(1800, 1800, noise=128))
    assert source.stat().st_size > 6 * 1024 * 1024  # past what a Lambda payload could carry
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    wait = WebDriverWait(browser, 90)
    try:
        browser.get(stack.api_url + "/")
        wait.until(ec.visibility_of_element_located((By.ID, "sign-in")))
        assert "sign in" in browser.find_element(By.ID, "service-info").text
        browser.find_element(By.ID, "sign-in").click()

        # The EMULATED managed login: a plain form.
        wait.until(ec.presence_of_element_located((By.ID, "username")))
        assert stack.sign_in is not None
        assert browser.current_url.startswith(stack.sign_in.base_url + "/oauth2/authorize?")
        browser.find_element(By.ID, "username").send_keys(USER)
        browser.find_element(By.ID, "password").send_keys(PASSWORD)
        browser.find_element(By.ID, "sign-in").click()

        # Back on the page with a code, traded for tokens; the query is gone.
        wait.until(ec.text_to_be_present_in_element((By.ID, "user-name"), USER))
        assert browser.current_url == stack.api_url + "/"
        wait.until(ec.text_to_be_present_in_element((By.ID, "service-info"), "environment local"))

        browser.find_element(By.ID, "image-input").send_keys(str(source))
        wait.until(lambda d: _image_rendered(d, "source-image"))
        browser.find_element(By.ID, "prompt").send_keys("a watercolor landscape at dusk")
        browser.find_element(By.ID, "seed").send_keys("77")
        browser.find_element(By.ID, "submit").click()

        wait.until(lambda d: d.find_element(By.ID, "result-view").get_attribute("data-status") in FINAL)
        status = browser.find_element(By.ID, "status").text
        assert browser.find_element(By.ID, "result-view").get_attribute("data-status") == "SUCCEEDED", status
        wait.until(lambda d: _image_rendered(d, "result-image"))
        wait.until(lambda d: "Source" in _metadata(d))
        metadata = _metadata(browser)
        assert metadata["Seed"] == "77" and metadata["Source"].startswith("1800\u00d71800")
        browser.save_screenshot(str(ARTIFACTS / "page-signed-in.png"))

        # The job's source went through the upload, into this user's own folder.
        job = get(stack, vocabulary.job_path(metadata["Job"]), _page_token(browser)).json()
        assert f'"{vocabulary.UPLOADS}' in json.dumps(job["source"]), job["source"]

        problems = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert problems == []

        # Signing out forgets the token: the page asks to sign in again.
        browser.find_element(By.ID, "sign-out").click()
        wait.until(ec.visibility_of_element_located((By.ID, "sign-in")))
        assert browser.execute_script("return sessionStorage.getItem('img2img.idToken')") is None
    except Exception:
        browser.save_screenshot(str(ARTIFACTS / "page-signed-in-failure.png"))
        raise


def _page_token(browser: Any) -> str:
    saved = json.loads(browser.execute_script("return sessionStorage.getItem('img2img.idToken')"))
    return str(saved["token"])
