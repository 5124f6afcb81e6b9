"""The typed records: the published metadata schema is the one the code writes, every written
metadata JSON validates against it, and records written before the types still load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from img2img.domain.records import JobRecord, Metadata, metadata_schema

pytestmark = pytest.mark.unit

PUBLISHED = Path(__file__).resolve().parents[2] / "docs" / "metadata.schema.json"


def test_the_published_schema_is_the_codes() -> None:
    assert json.loads(PUBLISHED.read_text()) == metadata_schema(), "run `make schema` and commit it"


def test_a_refused_jobs_metadata_validates_and_leaves_out_what_it_lacks() -> None:
    meta = Metadata(
        job_id="j",
        status="FAILED",
        door="s3",
        created_at="t",
        source={"bucket": "in", "key": "inbox/a.json"},
        output={"bucket": "out", "metadata_key": "results/a.json.json"},
        error={"code": "invalid_request", "message": "m"},
        service={"name": "img2img", "version": "0", "environment": "e"},
    )
    written = json.loads(meta.to_json_bytes())
    Draft202012Validator(metadata_schema()).validate(written)
    assert "model" not in written and "result" not in written and "version_id" not in written["source"]
    assert written["error"] == {"code": "invalid_request", "message": "m", "details": []}


def test_a_job_record_from_before_the_types_still_loads() -> None:
    """Records in a deployed table (kept job_ttl_days) held {} where nothing was known yet."""
    old = {
        "job_id": "j",
        "status": "QUEUED",
        "door": "api",
        "created_at": "t",
        "updated_at": "t",
        "model_id": "m",
        "request": {},
        "source": {"bucket": "in", "key": "api/j/source.png"},
        "output": {},
        "result": None,
        "error": None,
        "fallback_from": None,
    }
    record = JobRecord.model_validate(old)
    assert record.output is None and record.caller is None and not record.final
