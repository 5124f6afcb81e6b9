"""Who asked. Every API-door job belongs to its caller: only the same caller can read it back,
reuse its idempotency key or run an upload it was given. The API Gateway authorizer has
already proved who the caller is; this module only names them and derives what they own.

- `iam`: the signing principal's id (API Gateway's `$context.identity.user`, e.g.
  `AIDA...` for a user or `AROA...:session` for a role session). S3 event notifications name
  the same principal as `userIdentity.principalId` = `AWS:<id>`, so an image someone drops
  with their own credentials is theirs through the API too.
- `api_key`: the API key's id (`$context.identity.apiKeyId`), never the key itself.
- `user`: a user pool user's `sub` claim, when the API uses a Cognito authorizer.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic.dataclasses import dataclass

from img2img.domain.errors import FieldError, InvalidRequest
from img2img.vocabulary import API_SOURCES, UPLOADS

CallerKind = Literal["iam", "api_key", "user"]
KINDS: tuple[CallerKind, ...] = ("iam", "api_key", "user")


@dataclass(frozen=True)
class Caller:  # a pydantic dataclass: positional to build, and a field of the typed records
    kind: CallerKind
    id: str

    @property
    def tag(self) -> str:
        """An opaque, stable name for the caller: safe in object keys, keyed job ids and
        logs (it reveals no ARN or key id)."""
        return hashlib.sha256(f"{self.kind}:{self.id}".encode()).hexdigest()[:20]

    @property
    def upload_prefix(self) -> str:
        """Where this caller's upload tickets put sources; no one else's job may read there."""
        return f"{UPLOADS}{self.tag}/"

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "id": self.id}

    @classmethod
    def from_dict(cls, data: Any) -> Caller:
        """A caller recorded in a job record or a queue message."""
        if not isinstance(data, dict) or data.get("kind") not in KINDS or not data.get("id"):
            raise InvalidRequest("a job names no valid caller", [FieldError("caller", "kind and id")])
        return cls(data["kind"], str(data["id"]))

    @classmethod
    def from_s3_principal(cls, principal_id: str | None) -> Caller | None:
        """The IAM principal an S3 event names (`AWS:<principal id>`), if it names one."""
        if principal_id and principal_id.startswith("AWS:") and len(principal_id) > 4:
            return cls("iam", principal_id[4:])
        return None


def owns_source(caller: Caller | None, key: str, job_id: str) -> bool:
    """May a job of `caller` read `key`? Its own inline source (api/<job id>/) and its own
    uploads, nothing else: another caller's key is refused before anything reads it."""
    if key.startswith(f"{API_SOURCES}{job_id}/"):
        return True
    return caller is not None and key.startswith(caller.upload_prefix)


def not_yours(field: str) -> InvalidRequest:
    """The same answer whether the key exists or not: a refusal reveals nothing of others."""
    return InvalidRequest(
        f"{field} must be a key that POST /v1/uploads issued to you",
        [FieldError(field, "not an upload of yours: ask POST /v1/uploads for one")],
    )
