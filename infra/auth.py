"""Signing in (api_auth "cognito"): a user pool with managed login, and a public app client for
the page. The page runs the authorization code grant with PKCE against the pool's managed
login (no client secret: a browser cannot keep one), and sends the ID token it gets to the API,
whose Cognito user pools authorizer checks it (infra/api.py).

Security settings as AWS recommends them for user pools (Cognito developer guide, "Security
best practices for Amazon Cognito user pools"), each a cdk.json key where it costs or changes
what users do (infra/config.py): threat protection in full-function mode (Plus plan), MFA with
an authenticator app, a strong password policy, no self sign-up, recovery by e-mail only,
no user existence errors, deletion protection where the environment retains its data."""

from __future__ import annotations

from aws_cdk import Aws, Duration
from aws_cdk import aws_cognito as cognito
from constructs import Construct

from img2img import vocabulary
from infra.config import EnvironmentConfig
from infra.nag import acknowledge
from infra.removal import removal_policy

# Tokens the page holds: an hour (Cognito's default), and a refresh token the page never uses
# (the authorization code grant always issues one) kept at the shortest Cognito allows.
ID_TOKEN_HOURS = 1
REFRESH_TOKEN_MINUTES = 60
PASSWORD_MIN_LENGTH = 12
TEMPORARY_PASSWORD_DAYS = 3

_MFA = {"required": cognito.Mfa.REQUIRED, "optional": cognito.Mfa.OPTIONAL, "off": cognito.Mfa.OFF}


def page_url(config: EnvironmentConfig, rest_api_id: str) -> str:
    """The page's URL on the stage (GET /): the OAuth2 redirect and sign-out URI. Spelled out
    from the API's id rather than taken from RestApi.url, so the api function (which serves
    it) depends on the RestApi alone, not on its stage and deployment, which depend on it."""
    return f"{page_origin(rest_api_id)}/{config.name}/"


def page_origin(rest_api_id: str) -> str:
    """The stack's own origin: where the page is served, and the only one CORS allows."""
    return f"https://{rest_api_id}.execute-api.{Aws.REGION}.{Aws.URL_SUFFIX}"


class SignIn(Construct):
    """The user pool, its managed login domain and branding, and the page's app client."""

    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        plus = config.cognito_feature_plan == "plus"
        self.user_pool = cognito.UserPool(
            self,
            "UserPool",
            user_pool_name=f"{config.stack_name}-users",
            feature_plan=cognito.FeaturePlan.PLUS if plus else cognito.FeaturePlan.ESSENTIALS,
            # Full function: risky sign-ins are blocked or challenged, compromised passwords
            # refused. Only the Plus plan has threat protection at all.
            standard_threat_protection_mode=(
                cognito.StandardThreatProtectionMode.FULL_FUNCTION if plus else None
            ),
            self_sign_up_enabled=config.cognito_self_sign_up,
            sign_in_aliases=cognito.SignInAliases(email=True, username=False),
            sign_in_case_sensitive=False,
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            standard_attributes=cognito.StandardAttributes(
                email=cognito.StandardAttribute(required=True, mutable=True)
            ),
            mfa=_MFA[config.cognito_mfa],
            # An authenticator app: no SMS role, SNS spend or phone numbers to keep.
            mfa_second_factor=(
                cognito.MfaSecondFactor(otp=True, sms=False) if config.cognito_mfa != "off" else None
            ),
            password_policy=cognito.PasswordPolicy(
                min_length=PASSWORD_MIN_LENGTH,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
                temp_password_validity=Duration.days(TEMPORARY_PASSWORD_DAYS),
            ),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            deletion_protection=not config.destroy_on_delete,
            removal_policy=removal_policy(config),
        )
        prefix = config.cognito_domain_prefix or f"{config.bucket_name_prefix}-{Aws.ACCOUNT_ID}"
        self.domain = self.user_pool.add_domain(
            "Domain",
            cognito_domain=cognito.CognitoDomainOptions(domain_prefix=prefix),
            managed_login_version=cognito.ManagedLoginVersion.NEWER_MANAGED_LOGIN,
        )
        self.client: cognito.UserPoolClient | None = None

    def add_page_client(self, rest_api_id: str) -> cognito.UserPoolClient:
        """The page's app client: public (no secret), code grant only (PKCE: managed login
        requires a code_challenge from clients without a secret), redirecting to the page."""
        url = page_url(self.config, rest_api_id)
        self.client = self.user_pool.add_client(
            "PageClient",
            user_pool_client_name=f"{self.config.stack_name}-page",
            generate_secret=False,
            auth_flows=cognito.AuthFlow(user_srp=True),  # managed login signs in with SRP
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True),
                scopes=[cognito.OAuthScope.custom(scope) for scope in vocabulary.SIGN_IN_SCOPES],
                callback_urls=[url],
                logout_urls=[url],
            ),
            supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO],
            prevent_user_existence_errors=True,
            enable_token_revocation=True,
            id_token_validity=Duration.hours(ID_TOKEN_HOURS),
            access_token_validity=Duration.hours(ID_TOKEN_HOURS),
            refresh_token_validity=Duration.minutes(REFRESH_TOKEN_MINUTES),
        )
        # Managed login (the newer pages) shows nothing until the client has a style: Cognito's own.
        cognito.CfnManagedLoginBranding(
            self,
            "Branding",
            user_pool_id=self.user_pool.user_pool_id,
            client_id=self.client.user_pool_client_id,
            use_cognito_provided_values=True,
        )
        return self.client

    @property
    def base_url(self) -> str:
        """The managed login domain: /oauth2/authorize, /oauth2/token and /logout are under it."""
        return self.domain.base_url()

    def page_environment(self, rest_api_id: str) -> dict[str, str]:
        """What the api function tells the page (GET /v1/auth-config): no secret among it."""
        assert self.client is not None, "add_page_client() first"
        return {
            "IMG2IMG_AUTH_BASE_URL": self.base_url,
            "IMG2IMG_AUTH_CLIENT_ID": self.client.user_pool_client_id,
            "IMG2IMG_AUTH_REDIRECT_URI": page_url(self.config, rest_api_id),
        }

    def acknowledge_findings(self) -> None:
        if self.config.cognito_feature_plan != "plus":
            acknowledge(
                self.user_pool,
                "AwsSolutions-COG8",
                "Threat protection (AdvancedSecurityMode ENFORCED) exists only in Cognito's Plus feature "
                "plan; this environment chose cognito_feature_plan 'essentials' in cdk.json to pay "
                "the lower per-user price, without threat protection.",
            )
        if self.config.cognito_mfa != "required":
            acknowledge(
                self.user_pool,
                "AwsSolutions-COG2",
                f"MFA is '{self.config.cognito_mfa}' by this environment's cognito_mfa key in cdk.json "
                "(default 'required'): its users sign in with a password alone unless they add an "
                "authenticator app.",
            )
