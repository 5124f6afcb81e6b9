"""Opt-in, against a deployed stack with api_auth "cognito": what local mode can only emulate
(local/cognito.py). The real authorizer's answers without a token or with a bad one, the open
routes, and Cognito's own token endpoint as the page calls it (a code that is no code is
refused with OAuth's invalid_grant, the shape the emulated endpoint answers too).

The routes that need a signed-in user run in test_e2e.py when IMG2IMG_E2E_ID_TOKEN holds one
(sign in on the page, then copy sessionStorage's "img2img.idToken")."""

from __future__ import annotations

import pytest

from img2img.vocabulary import AUTH_CONFIG, HEALTH, OPEN_ROUTES, job_path
from tests.aws.conftest import Deployed

pytestmark = pytest.mark.aws


@pytest.fixture
def cognito(deployed: Deployed) -> Deployed:
    if deployed.outputs.get("ApiAuthMode") != "cognito":
        pytest.skip("the deployed stack's api_auth is not cognito")
    return deployed


def test_the_open_routes_answer_without_a_token(cognito: Deployed) -> None:
    for route in OPEN_ROUTES:
        assert cognito.call(route.method, route.path, sign=False).status_code == 200, route


@pytest.mark.parametrize("token", [None, "not-a-jwt", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."])
def test_a_route_that_needs_a_token_answers_the_documented_401(cognito: Deployed, token: str | None) -> None:
    import requests

    for path in (HEALTH.path, job_path("0" * 32)):
        headers = {"Authorization": token} if token else {}
        reply = requests.get(f"{cognito.api_url}{path}", headers=headers, timeout=30)
        assert reply.status_code == 401, (path, reply.text)
        assert reply.json()["error"]["code"] == "unauthorized", reply.text


def test_cognitos_token_endpoint_refuses_a_code_that_is_no_code(cognito: Deployed) -> None:
    import requests

    sign_in = cognito.call(AUTH_CONFIG.method, AUTH_CONFIG.path, sign=False).json()["sign_in"]
    reply = requests.post(
        sign_in["token_url"],
        data={
            "grant_type": "authorization_code",
            "client_id": sign_in["client_id"],
            "code": "no-such-code",
            "redirect_uri": sign_in["redirect_uri"],
            "code_verifier": "x" * 43,
        },
        timeout=30,
    )
    assert reply.status_code == 400 and reply.json()["error"] == "invalid_grant", reply.text
