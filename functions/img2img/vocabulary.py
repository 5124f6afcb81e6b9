"""The service's vocabulary: every name that more than one part of the project must spell the
same way lives here once. The functions, the stack (infra/), local mode (local/), the command
(client/) and the tests import it; none keeps a copy.

Model ids, inference-profile prefixes and lifecycle facts have their own one place,
img2img/catalog.py."""

from __future__ import annotations

from typing import Literal, NamedTuple

from typing_extensions import TypeAliasType

# --- key prefixes --------------------------------------------------------------------------
# Input bucket.
INBOX = "inbox/"  # the S3 door: an image or a manifest dropped here starts jobs
SOURCES = "sources/"  # images for manifests to name: dropping one here starts nothing
UPLOADS = "uploads/"  # presigned POST uploads, one folder per caller (domain/caller.py)
API_SOURCES = "api/"  # inline sources the API door stores, one folder per job
INPUT_PREFIXES = (INBOX, SOURCES, API_SOURCES, UPLOADS)
# Output bucket.
API_RESULTS = "jobs/"  # API-door jobs: jobs/<job id>/result.<ext> and metadata.json
RESULTS = "results/"  # S3-door jobs: results/<path>/<name>.<ext>.<fmt> and .json
MANIFEST_RESULTS = "manifest-results/"  # images a manifest names: manifest-results/<hash of its key>/<key>...


# --- routes --------------------------------------------------------------------------------
class Route(NamedTuple):
    method: Literal["GET", "POST"]
    path: str  # API Gateway's resource path ({param} for a path parameter)

    @property
    def resolver_path(self) -> str:
        """The same path as Powertools' event handler spells it (<param>)."""
        return self.path.replace("{", "<").replace("}", ">")


SYNC = Route("POST", "/v1/image-to-image")
SUBMIT = Route("POST", "/v1/jobs")
JOB = Route("GET", "/v1/jobs/{job_id}")
UPLOAD = Route("POST", "/v1/uploads")
MODELS = Route("GET", "/v1/models")
HEALTH = Route("GET", "/v1/health")
OPENAPI = Route("GET", "/v1/openapi.json")
DOCS = Route("GET", "/v1/docs")
PAGE = Route("GET", "/")
# How the page signs in (api_auth "cognito": the OAuth2 endpoints and the app client's id).
AUTH_CONFIG = Route("GET", "/v1/auth-config")
ROUTES = (SYNC, SUBMIT, JOB, UPLOAD, MODELS, HEALTH, OPENAPI, DOCS, PAGE, AUTH_CONFIG)
IMAGE_REQUEST_ROUTES = (SYNC, SUBMIT)  # take an SDXL image-to-image body
# With api_auth "cognito", what a browser loads before anyone has signed in: the page, the docs
# page and the spec it reads, and the page's sign-in settings. Every other route needs a token.
OPEN_ROUTES = (PAGE, DOCS, OPENAPI, AUTH_CONFIG)


# --- signing in (api_auth "cognito") -----------------------------------------------------------
AUTHORIZATION_HEADER = "Authorization"  # the user's ID token, as the Cognito authorizer reads it
# The claim that names a user pool user: the job owner (domain/caller.py).
USER_CLAIM = "sub"
SIGN_IN_SCOPES = ("openid", "email")


def job_path(job_id: str) -> str:
    return JOB.path.replace("{job_id}", job_id)


# --- job statuses --------------------------------------------------------------------------
# Named aliases (TypeAliasType), so the OpenAPI spec and the metadata JSON's schema carry one
# named enum each ($ref), not a copy inlined wherever a field uses it.
Status = TypeAliasType("Status", Literal["QUEUED", "RUNNING", "SUCCEEDED", "CONTENT_FILTERED", "FAILED"])
# An SDXL artifact's finishReason, as Bedrock documents SDXL's response.
FinishReason = TypeAliasType("FinishReason", Literal["SUCCESS", "ERROR", "CONTENT_FILTERED"])
Door = TypeAliasType("Door", Literal["api", "s3"])
FINAL_STATUSES: frozenset[str] = frozenset({"SUCCEEDED", "CONTENT_FILTERED", "FAILED"})

# --- the S3 door's object metadata (x-amz-meta-<name>; S3 lower-cases names) -----------------
PROMPT = "prompt"
NEGATIVE_PROMPT = "negative-prompt"
# request field -> metadata name, for the fields besides the prompts; each parsed as the type.
METADATA_NUMBERS: dict[str, tuple[str, type[float] | type[int]]] = {
    "image_strength": ("image-strength", float),
    "cfg_scale": ("cfg-scale", float),
    "seed": ("seed", int),
    "steps": ("steps", int),
}
METADATA_TEXTS: dict[str, str] = {
    "style_preset": "style-preset",
    "sampler": "sampler",
    "model_id": "model-id",
    "resize_mode": "resize-mode",
    "output_format": "output-format",
}
METADATA_NAMES: dict[str, str] = {
    **{field: name for field, (name, _) in METADATA_NUMBERS.items()},
    **METADATA_TEXTS,
}
