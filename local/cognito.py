"""api_auth "cognito" in local mode: the user pool lives in moto (its user-pool APIs and its
JWKS), the local front checks every token as API Gateway's Cognito user pools authorizer
does, and the OAuth 2.0 endpoints of the pool's managed login are EMULATED here, minimally.

- The pool and the page's app client are created in moto (create_sign_in), as the stack does;
  add users with `aws cognito-idp admin-create-user` against moto's endpoint (README).
- TokenCheck verifies an ID token: RS256 signature against the pool's JWKS (fetched from moto,
  as API Gateway fetches Cognito's), `iss` = the pool, `token_use` = id, `aud` = the page's
  client, and `exp` not passed. Anything else is a 401 with the stack's UNAUTHORIZED gateway
  response body (infra/api.py). The claims then go where API Gateway puts them:
  requestContext.authorizer.claims, every value a string, `exp` and `iat` as dates.
- moto serves no managed login pages, so EmulatedOAuth answers /oauth2/authorize (a plain
  sign-in form), /oauth2/token (authorization code grant, PKCE S256 checked) and /logout under
  EMULATED_AUTH_PREFIX on the local API's own address. It signs users in with moto's
  AdminInitiateAuth (ADMIN_USER_PASSWORD_AUTH), so the page runs the same code + PKCE flow it
  runs against a deployed stack. NOT emulated: MFA, threat protection, password reset,
  self sign-up, the managed login's look.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode

from botocore.exceptions import ClientError

from img2img import vocabulary
from img2img_local import resources as r

# API Gateway's own message for a missing or rejected token (its UNAUTHORIZED gateway response,
# https://docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html),
# in the stack's error shape (infra/api.py UNAUTHORIZED_TEMPLATE).
UNAUTHORIZED_MESSAGE = "Unauthorized"
UNAUTHORIZED_CODE = "unauthorized"
# How API Gateway writes a date claim into requestContext.authorizer.claims.
CLAIM_DATE_FORMAT = "%a %b %d %H:%M:%S UTC %Y"
_DATE_CLAIMS = ("exp", "iat")
CODE_LIFETIME_SECONDS = 300  # Cognito's authorization codes are good for five minutes
_MAX_TOKEN_CHARS = 16 * 1024


def unauthorized_body() -> dict[str, Any]:
    return {"error": {"code": UNAUTHORIZED_CODE, "message": UNAUTHORIZED_MESSAGE, "details": []}}


@dataclass(frozen=True)
class LocalSignIn:
    user_pool_id: str
    client_id: str
    issuer: str
    jwks_url: str
    redirect_uri: str

    @property
    def base_url(self) -> str:
        """Where the emulated managed login answers: the local API's address + the prefix."""
        return self.redirect_uri.rstrip("/") + r.EMULATED_AUTH_PREFIX


def create_sign_in(aws_url: str, page_url: str) -> LocalSignIn:
    """The user pool and the page's public app client, in moto, as infra/auth.py makes them
    (e-mail as the user name, no self sign-up, code grant to the page). MFA is off: the emulated
    sign-in form asks for no second factor."""
    from img2img_local.aws import aws_client  # moto's side: only where a stack is started

    idp = aws_client("cognito-idp", aws_url)
    pool = idp.create_user_pool(
        PoolName=r.USER_POOL,
        UsernameAttributes=["email"],
        AutoVerifiedAttributes=["email"],
        AdminCreateUserConfig={"AllowAdminCreateUserOnly": True},
        MfaConfiguration="OFF",
        Policies={
            "PasswordPolicy": {
                "MinimumLength": 12,
                "RequireLowercase": True,
                "RequireUppercase": True,
                "RequireNumbers": True,
                "RequireSymbols": True,
            }
        },
    )["UserPool"]
    client = idp.create_user_pool_client(
        UserPoolId=pool["Id"],
        ClientName=r.USER_POOL_CLIENT,
        GenerateSecret=False,
        # The emulated sign-in form checks passwords with AdminInitiateAuth; the stack's client
        # allows SRP only, which managed login uses.
        ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        AllowedOAuthFlows=["code"],
        AllowedOAuthFlowsUserPoolClient=True,
        AllowedOAuthScopes=list(vocabulary.SIGN_IN_SCOPES),
        CallbackURLs=[page_url],
        LogoutURLs=[page_url],
        SupportedIdentityProviders=["COGNITO"],
        PreventUserExistenceErrors="ENABLED",
    )["UserPoolClient"]
    return LocalSignIn(
        user_pool_id=pool["Id"],
        client_id=client["ClientId"],
        # What Cognito (and moto) write as `iss`: the pool's URL in its region.
        issuer=f"https://cognito-idp.{r.REGION}.amazonaws.com/{pool['Id']}",
        jwks_url=f"{aws_url}/{pool['Id']}/.well-known/jwks.json",
        redirect_uri=page_url,
    )


class Unauthorized(Exception):
    """The token is missing or fails a check; the message says which (logged, never sent)."""


class TokenCheck:
    """API Gateway's Cognito user pools authorizer, for one pool and the page's client."""

    def __init__(self, sign_in: LocalSignIn, *, clock: Callable[[], float] = time.time) -> None:
        self._sign_in = sign_in
        self._clock = clock
        self._keys: Any = None
        self._lock = threading.Lock()

    def _key_set(self) -> Any:
        from joserfc.jwk import KeySet

        with self._lock:
            if self._keys is None:
                with urllib.request.urlopen(self._sign_in.jwks_url, timeout=10) as reply:
                    self._keys = KeySet.import_key_set(json.loads(reply.read()))
            return self._keys

    def claims(self, headers: Iterable[tuple[str, str]]) -> dict[str, Any]:
        """The verified claims of the request's ID token, or Unauthorized."""
        from joserfc import jwt
        from joserfc.errors import JoseError

        values = [v for n, v in headers if n.lower() == vocabulary.AUTHORIZATION_HEADER.lower()]
        if not values or not values[-1].strip():
            raise Unauthorized("no Authorization header")
        token = values[-1].strip()
        if len(token) > _MAX_TOKEN_CHARS:
            raise Unauthorized("the token is too long to be a Cognito token")
        try:
            verified = jwt.decode(token, self._key_set(), algorithms=["RS256"])
        except (JoseError, ValueError, TypeError, KeyError) as exc:  # malformed or bad signature
            raise Unauthorized(f"the token does not verify: {type(exc).__name__}") from None
        claims = dict(verified.claims)
        if claims.get("iss") != self._sign_in.issuer:
            raise Unauthorized("the token is from another user pool")
        if claims.get("token_use") != "id":
            raise Unauthorized("not an ID token")
        if claims.get("aud") != self._sign_in.client_id:
            raise Unauthorized("the token is for another app client")
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool) or exp <= self._clock():
            raise Unauthorized("the token has expired")
        if not isinstance(claims.get(vocabulary.USER_CLAIM), str):
            raise Unauthorized("the token names no user")
        return claims


def as_authorizer_claims(claims: dict[str, Any]) -> dict[str, str]:
    """Claims as API Gateway passes them to a Lambda proxy: a map of strings (the TestInvoke
    Authorizer API documents `claims` as string to string), dates spelled out, numbers and
    booleans as text (tests/events/apigw_get_job_cognito.json)."""
    rendered: dict[str, str] = {}
    for name, value in claims.items():
        if name in _DATE_CLAIMS and isinstance(value, int | float):
            rendered[name] = time.strftime(CLAIM_DATE_FORMAT, time.gmtime(value))
        elif isinstance(value, bool):
            rendered[name] = "true" if value else "false"
        elif isinstance(value, str):
            rendered[name] = value
        else:
            rendered[name] = json.dumps(value) if isinstance(value, list | dict) else str(value)
    return rendered


# --- the EMULATED managed login ----------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class _Grant:
    tokens: dict[str, Any]
    client_id: str
    redirect_uri: str
    code_challenge: str
    expires_at: float


class EmulatedOAuth:
    """EMULATED: the pool's OAuth 2.0 endpoints, just enough for the page's code + PKCE flow."""

    def __init__(self, sign_in: LocalSignIn, aws_url: str, *, clock: Callable[[], float] = time.time) -> None:
        self._sign_in = sign_in
        self._aws_url = aws_url
        self._clock = clock
        self._grants: dict[str, _Grant] = {}
        self._lock = threading.Lock()

    def handles(self, path: str) -> bool:
        return path.startswith(r.EMULATED_AUTH_PREFIX + "/")

    def serve(self, method: str, path: str, query: str, form: bytes) -> Reply:
        route = path[len(r.EMULATED_AUTH_PREFIX) :]
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        if route == "/oauth2/authorize" and method == "GET":
            return self._authorize_form(params)
        if route == "/oauth2/authorize" and method == "POST":
            return self._sign_in_user(params, _form(form))
        if route == "/oauth2/token" and method == "POST":
            return self._token(_form(form))
        if route == "/logout" and method == "GET":
            return self._logout(params)
        return _json(
            404, {"error": "not_found", "error_description": f"no emulated endpoint {method} {route}"}
        )

    # /oauth2/authorize ------------------------------------------------------------------------

    def _authorize_problem(self, params: dict[str, str]) -> str | None:
        if params.get("response_type") != "code":
            return "response_type must be code"
        if params.get("client_id") != self._sign_in.client_id:
            return "unknown client_id"
        if params.get("redirect_uri") != self._sign_in.redirect_uri:
            return "redirect_uri is not one of the client's callback URLs"
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            return "a public client must send code_challenge with code_challenge_method S256"
        scopes = set(params.get("scope", "").split())
        if not scopes <= set(vocabulary.SIGN_IN_SCOPES):
            return "scope asks for more than the client allows"
        return None

    def _authorize_form(self, params: dict[str, str], message: str = "", status: int = 200) -> Reply:
        problem = self._authorize_problem(params)
        if problem:
            return _page(400, f"<p class=error>Sign-in request refused: {html.escape(problem)}</p>")
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in params.items()
        )
        error = f'<p id="sign-in-error" class=error>{html.escape(message)}</p>' if message else ""
        body = (
            "<h1>Sign in to img2img</h1>"
            "<p><strong>EMULATED</strong> managed login of local mode (no MFA, no password reset).</p>"
            f"{error}<form method=post>{hidden}"
            '<label>E-mail <input id="username" name="username" type="email" autocomplete="username"></label>'
            '<label>Password <input id="password" name="password" type="password" '
            'autocomplete="current-password"></label>'
            '<button id="sign-in" type="submit">Sign in</button></form>'
        )
        return _page(status, body)

    def _sign_in_user(self, query: dict[str, str], form: dict[str, str]) -> Reply:
        params = {k: v for k, v in form.items() if k not in ("username", "password")} or query
        problem = self._authorize_problem(params)
        if problem:
            return _page(400, f"<p class=error>Sign-in request refused: {html.escape(problem)}</p>")
        username, password = form.get("username", ""), form.get("password", "")
        if not username or not password:
            return self._authorize_form(params, "Enter your e-mail address and password.", 400)
        from img2img_local.aws import aws_client

        idp = aws_client("cognito-idp", self._aws_url)
        try:
            answer = idp.admin_initiate_auth(
                UserPoolId=self._sign_in.user_pool_id,
                ClientId=self._sign_in.client_id,
                AuthFlow="ADMIN_USER_PASSWORD_AUTH",
                AuthParameters={"USERNAME": username, "PASSWORD": password},
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NotAuthorizedException", "UserNotFoundException", "InvalidParameterException"):
                # One message for both, as managed login does with user existence errors off.
                return self._authorize_form(params, "Incorrect username or password.", 400)
            raise
        if "AuthenticationResult" not in answer:
            challenge = answer.get("ChallengeName", "a challenge")
            return self._authorize_form(
                params,
                f"This user must answer {challenge} first; the emulated sign-in cannot. Give them a "
                "permanent password: aws cognito-idp admin-set-user-password --permanent (README).",
                400,
            )
        result = answer["AuthenticationResult"]
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._grants[code] = _Grant(
                tokens={
                    "id_token": result["IdToken"],
                    "access_token": result["AccessToken"],
                    "refresh_token": result.get("RefreshToken", ""),
                    "expires_in": int(result.get("ExpiresIn", 3600)),
                    "token_type": "Bearer",
                },
                client_id=params["client_id"],
                redirect_uri=params["redirect_uri"],
                code_challenge=params["code_challenge"],
                expires_at=self._clock() + CODE_LIFETIME_SECONDS,
            )
        back = {"code": code, **({"state": params["state"]} if "state" in params else {})}
        return Reply(302, [("Location", f"{params['redirect_uri']}?{urlencode(back)}")], b"")

    # /oauth2/token ----------------------------------------------------------------------------

    def _token(self, form: dict[str, str]) -> Reply:
        """Errors as Cognito's token endpoint documents them: 400 with an `error` code."""
        if form.get("grant_type") != "authorization_code":
            return _json(400, {"error": "unsupported_grant_type"})
        if form.get("client_id") != self._sign_in.client_id:
            return _json(400, {"error": "invalid_client"})
        with self._lock:
            grant = self._grants.pop(form.get("code", ""), None)  # a code is good once
        if grant is None or grant.expires_at < self._clock():
            return _json(400, {"error": "invalid_grant"})
        if grant.client_id != form["client_id"] or grant.redirect_uri != form.get("redirect_uri"):
            return _json(400, {"error": "invalid_grant"})
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if not verifier or not secrets.compare_digest(challenge, grant.code_challenge):
            return _json(400, {"error": "invalid_grant"})
        return _json(200, grant.tokens)

    def _logout(self, params: dict[str, str]) -> Reply:
        if params.get("client_id") != self._sign_in.client_id:
            return _page(400, "<p class=error>unknown client_id</p>")
        target = params.get("logout_uri", "")
        if target != self._sign_in.redirect_uri:
            return _page(400, "<p class=error>logout_uri is not one of the client's sign-out URLs</p>")
        return Reply(302, [("Location", target)], b"")


def _form(body: bytes) -> dict[str, str]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return {}
    return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}


def _json(status: int, payload: dict[str, Any]) -> Reply:
    return Reply(
        status,
        [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
        json.dumps(payload).encode(),
    )


def _page(status: int, body: str) -> Reply:
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in (emulated)</title>'
        "</head><body>" + body + "</body></html>"
    )
    return Reply(
        status,
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Cache-Control", "no-store"),
            ("Content-Security-Policy", "default-src 'none'; form-action 'self'; frame-ancestors 'none'"),
        ],
        document.encode(),
    )
