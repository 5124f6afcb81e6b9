"""The one event a job sends when it ends (issue #23): EventBridge's `source` and
`detail-type`, and the `detail`, built once from the job's final metadata JSON. `make schema`
publishes the detail's JSON Schema (docs/job-finished.schema.json) for whoever writes a rule or a
consumer. The event says where things are, never what is in them (no prompt, no image): a
consumer reads the metadata JSON it points to."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from img2img.domain.records import FallbackFrom, Metadata, optional
from img2img.vocabulary import Door

SOURCE = "img2img"  # EventBridge reserves sources that begin with "aws."
DETAIL_TYPE = "Image Job Finished"

FinalStatus = Literal["SUCCEEDED", "CONTENT_FILTERED", "FAILED"]


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


class JobFinished(BaseModel):
    """The event's `detail`. At-least-once: a job whose event went out may send it again if its
    run is repeated before it is recorded as finished; `job_id` with `status` identifies one
    outcome, so consumers deduplicate on them (EventBridge's envelope `id` differs per send)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str
    status: FinalStatus
    door: Door
    environment: str
    created_at: str
    completed_at: str
    # The model that answered (or was asked last); none when the job was refused before a model
    # was chosen. `fallback_from`: the models that were gone before it, in order.
    model_id: str | None = optional()
    fallback_from: list[FallbackFrom] | None = optional()
    result_s3_uri: str | None = optional()  # the result image, when the job made one
    metadata_s3_uri: str  # the job's metadata JSON: it exists when the event is sent
    error_code: str | None = optional()  # FAILED only: the code of the metadata's `error`

    @classmethod
    def of(cls, metadata: Metadata) -> JobFinished:
        result = metadata.result
        assert metadata.completed_at is not None, "an event is sent for a finished job only"
        return cls(
            job_id=metadata.job_id,
            status=metadata.status,  # pydantic refuses a status that is not final
            door=metadata.door,
            environment=metadata.service.environment,
            created_at=metadata.created_at,
            completed_at=metadata.completed_at,
            model_id=metadata.model.id if metadata.model else None,
            fallback_from=metadata.model.fallback_from if metadata.model else None,
            result_s3_uri=s3_uri(result.bucket, result.key)
            if result and result.bucket and result.key
            else None,
            metadata_s3_uri=s3_uri(metadata.output.bucket, metadata.output.metadata_key),
            error_code=metadata.error.code if metadata.error and metadata.status == "FAILED" else None,
        )

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def job_finished_schema() -> dict[str, Any]:
    """The detail's JSON Schema, as published in docs/job-finished.schema.json."""
    schema = JobFinished.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"img2img {DETAIL_TYPE} event detail"
    schema["description"] = (
        f"The `detail` of the EventBridge event (source `{SOURCE}`, detail-type `{DETAIL_TYPE}`) "
        "every img2img job sends once it has ended and its metadata JSON is written. "
        "Generated from domain/job_events.py."
    )
    return schema
