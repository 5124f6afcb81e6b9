"""The one place that calls Bedrock's control plane (bedrock:GetFoundationModel) to read a
model's lifecycle state. It never raises: a state that cannot be read is UNKNOWN, with the
error code, so one denied or throttled lookup does not hide the other models' states."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from img2img.catalog import base_model_id, retirement
from img2img.domain.lifecycle import ModelStatus

__all__ = ["FoundationModels", "ModelStatus", "bedrock_client"]

# A small control-plane read once a day: botocore's standard mode retries throttling and 5xx
# with backoff; short timeouts keep a check of every model well inside the function's timeout.
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=5)


def bedrock_client(region: str | None) -> Any:
    """A `bedrock` (control plane) client. AWS_ENDPOINT_URL_BEDROCK points it elsewhere
    (local mode's emulator); boto3 reads that itself."""
    return boto3.session.Session().client("bedrock", region_name=region, config=CLIENT_CONFIG)


class FoundationModels:
    def __init__(self, client: Any) -> None:
        self._client = client

    def status(self, model_id: str) -> ModelStatus:
        base = base_model_id(model_id)
        retired = retirement(base)
        if retired:
            # Known from the catalogue: no call needed (and Bedrock would only answer "not found").
            end_of_life = retired.end_of_life.isoformat() if retired.end_of_life else None
            when = f"on {end_of_life}" if end_of_life else "(AWS published no date)"
            return ModelStatus(
                base,
                "GONE",
                f"{retired.name} reached end of life {when}: use {retired.successor}",
                end_of_life,
            )
        try:
            response = self._client.get_foundation_model(modelIdentifier=base)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, message = error.get("Code") or "ClientError", error.get("Message", "")
            if code == "ResourceNotFoundException":
                if base != model_id:
                    return self._profile(model_id, base)
                # Past end of life, or not offered in this region: every call would fail alike.
                return ModelStatus(base, "GONE", f"{code}: {message} (region {self._region})")
            return ModelStatus(base, "UNKNOWN", f"{code}: {message}")
        except BotoCoreError as exc:  # connection faults, after botocore's retries
            return ModelStatus(base, "UNKNOWN", f"{type(exc).__name__}: {exc}")
        return _from_details(base, response.get("modelDetails") or {})

    def _profile(self, profile_id: str, base: str) -> ModelStatus:
        """A model used only through a cross-region profile whose base id GetFoundationModel does
        not read in this region: GetInferenceProfile says whether the profile still serves (its
        status is ACTIVE or it is gone; a profile has no LEGACY state). ACTIVE is not a false
        alarm; not found is GONE, as for a model.
        https://docs.aws.amazon.com/bedrock/latest/APIReference/API_GetInferenceProfile.html"""
        try:
            profile = self._client.get_inference_profile(inferenceProfileIdentifier=profile_id)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, message = error.get("Code") or "ClientError", error.get("Message", "")
            where = f"{code}: {message} (profile {profile_id}, region {self._region})"
            if code == "ResourceNotFoundException":
                return ModelStatus(base, "GONE", where)
            return ModelStatus(base, "UNKNOWN", where)
        except BotoCoreError as exc:
            return ModelStatus(base, "UNKNOWN", f"{type(exc).__name__}: {exc}")
        status = profile.get("status")
        if status == "ACTIVE":
            return ModelStatus(
                base, "ACTIVE", f"ACTIVE through profile {profile_id} (its model is not read here)"
            )
        return ModelStatus(base, "UNKNOWN", f"profile {profile_id} is {status!r}")

    @property
    def _region(self) -> str:
        return str(self._client.meta.region_name)


def _from_details(base: str, details: dict[str, Any]) -> ModelStatus:
    lifecycle = details.get("modelLifecycle") or {}
    status = lifecycle.get("status")
    end_of_life = _iso(lifecycle.get("endOfLifeTime"))
    if status == "ACTIVE":
        return ModelStatus(base, "ACTIVE", "ACTIVE", end_of_life)
    if status == "LEGACY":
        since = _iso(lifecycle.get("legacyTime"))
        detail = "LEGACY" + (f" since {since}" if since else "")
        detail += f", end of life {end_of_life}" if end_of_life else ", end of life not announced"
        return ModelStatus(base, "LEGACY", detail, end_of_life)
    # A status this code does not know (the API lists ACTIVE and LEGACY only): say so, not ACTIVE.
    return ModelStatus(base, "UNKNOWN", f"unexpected lifecycle status {status!r}", end_of_life)


def _iso(value: Any) -> str | None:
    """One spelling of a timestamp: botocore parses them into datetimes, a stubbed response
    carries the wire's ISO 8601 strings."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    return value.isoformat() if isinstance(value, datetime) else str(value)
