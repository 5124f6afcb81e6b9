"""The S3 door from the client's side: put an image under inbox/ with its parameters as object
metadata (the names domain/s3_door.py reads), name the job it starts (computed by the service's
own rule, s3_door.job_id_for, before the worker runs), and wait for the result's metadata JSON to
appear in the output bucket (results/<path>/<name>.<ext>.json, written last, after the image)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import botocore.exceptions

from img2img.domain.s3_door import (
    SourceObject,
    is_manifest,
    job_id_for,
    metadata_request,
    output_keys,
    request_from_metadata,
)
from img2img.vocabulary import INBOX, METADATA_NAMES, NEGATIVE_PROMPT, PROMPT
from img2img_client.errors import RequestRejected, Unreachable, from_aws
from img2img_client.progress import Progress

# request field -> x-amz-meta-<name>: the S3 door's own names (img2img/vocabulary.py).
S3_METADATA_LIMIT_BYTES = 2048  # user-defined metadata, names and values together


@dataclass(frozen=True)
class Dropped:
    bucket: str
    key: str
    etag: str
    version_id: str | None
    body: dict[str, Any]  # the request the metadata describes
    metadata_key: str
    output_bucket: str
    previous_metadata_etag: str | None  # the result metadata's ETag before this drop


def metadata_for(body: Mapping[str, Any]) -> dict[str, str]:
    """The x-amz-meta-* values (without the prefix) for an SDXL body built by the command."""
    prompts = body["text_prompts"]
    metadata = {PROMPT: _header_safe(next(p["text"] for p in prompts if p["weight"] > 0))}
    negative = [p["text"] for p in prompts if p["weight"] < 0]
    if negative:
        metadata[NEGATIVE_PROMPT] = _header_safe(negative[0])
    for field_name, name in METADATA_NAMES.items():
        if body.get(field_name) is not None:
            metadata[name] = _header_safe(str(body[field_name]))
    size = sum(len(k.encode()) + len(v.encode()) for k, v in metadata.items())
    if size > S3_METADATA_LIMIT_BYTES:
        raise RequestRejected(
            f"the parameters take {size} bytes of S3 metadata, over S3's {S3_METADATA_LIMIT_BYTES}: "
            "shorten the prompts, or send the image through the API door",
            code="metadata_too_large",
        )
    return metadata


def _header_safe(value: str) -> str:
    """S3 metadata travels in HTTP headers: non-ASCII text goes RFC 2047-encoded, which the S3
    door decodes."""
    if value.isascii() and value.isprintable():
        return value
    return "=?UTF-8?B?" + base64.b64encode(value.encode()).decode() + "?="


def inbox_key(name: str, key: str | None) -> str:
    """--key as given (under inbox/ or not), else inbox/<file name>."""
    if key:
        key = key.lstrip("/")
        if not key.startswith(INBOX):
            raise RequestRejected(f"--key must be under {INBOX} to start a job: {key}", code="not_inbox")
        if key.endswith("/"):
            key += name
    else:
        key = INBOX + name
    if is_manifest(key):
        raise RequestRejected(
            f"the S3 door reads a key ending in .json as a manifest, not an image: {key}", code="not_an_image"
        )
    return key


def drop(
    s3: Any,
    *,
    input_bucket: str,
    output_bucket: str,
    key: str,
    data: bytes,
    content_type: str,
    body: Mapping[str, Any],
) -> Dropped:
    metadata = metadata_for(body)
    outputs = output_keys(output_bucket, key)
    previous = _etag_of(s3, output_bucket, outputs.metadata_key)
    try:
        reply = s3.put_object(
            Bucket=input_bucket, Key=key, Body=data, ContentType=content_type, Metadata=metadata
        )
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise from_aws(f"put s3://{input_bucket}/{key}", exc) from exc
    return Dropped(
        bucket=input_bucket,
        key=key,
        etag=str(reply.get("ETag", "")).strip('"'),
        version_id=reply.get("VersionId"),
        body=dict(body),
        metadata_key=outputs.metadata_key,
        output_bucket=output_bucket,
        previous_metadata_etag=previous,
    )


def job_id_of(dropped: Dropped) -> str:
    """The id of the job this drop starts, by the service's own rule: the worker reads the
    metadata back (request_from_metadata), checks it (metadata_request) and names the job by
    the object version and the request (job_id_for). The same code, so the same id."""
    body = {**request_from_metadata(metadata_for(dropped.body)), "init_image_s3_key": dropped.key}
    request = metadata_request(body)
    source = SourceObject(dropped.bucket, dropped.key, dropped.version_id, dropped.etag)
    return job_id_for(source, request.model_dump(exclude_none=True))


def wait_for_metadata(
    s3: Any,
    dropped: Dropped,
    *,
    timeout: float,
    progress: Progress,
    sleep: Callable[[float], None] = time.sleep,
    again: str = "",
) -> dict[str, Any]:
    """The result metadata of this drop (not of an earlier one under the same name). `again`:
    the command that waits on, named when the wait gives up."""
    deadline = time.monotonic() + timeout
    seen: str | None = None
    interval = 0.5
    where = f"s3://{dropped.output_bucket}/{dropped.metadata_key}"
    while True:
        progress.update(f"waiting for {where}")
        etag = _etag_of(s3, dropped.output_bucket, dropped.metadata_key)
        if etag is not None and etag != seen:
            seen = etag
            document = _read_json(s3, dropped.output_bucket, dropped.metadata_key)
            if document is not None and is_result_of(document, dropped, etag):
                return document
        if time.monotonic() >= deadline:
            later = f": {again}" if again else f": look at {where} later"
            raise Unreachable(
                f"no result at {where} after {timeout:.0f}s; it may still come{later}", code="timeout"
            )
        sleep(interval)
        interval = min(interval * 1.5, 3.0)


def is_result_of(document: Mapping[str, Any], dropped: Dropped, etag: str) -> bool:
    """Does this metadata JSON answer this drop? Same object (version or content), and the same
    parameters; a rejection (no request in it) counts when it was written after the drop."""
    source = document.get("source") or {}
    if source.get("key") != dropped.key:
        return False
    if dropped.version_id and source.get("version_id"):
        if source["version_id"] != dropped.version_id:
            return False
    elif source.get("etag") and str(source["etag"]).strip('"') != dropped.etag:
        return False
    request = document.get("request")
    if not isinstance(request, dict):
        return etag != dropped.previous_metadata_etag
    return _same_request(request, dropped.body)


def _same_request(recorded: Mapping[str, Any], sent: Mapping[str, Any]) -> bool:
    sent_prompts = [(p["text"].strip(), float(p["weight"])) for p in sent["text_prompts"]]
    recorded_prompts = [
        (str(p.get("text", "")), float(p.get("weight", 1.0))) for p in recorded.get("text_prompts", [])
    ]
    if sent_prompts != recorded_prompts:
        return False
    for field_name in METADATA_NAMES:
        want = sent.get(field_name)
        if want is None:
            continue
        got = recorded.get(field_name)
        if isinstance(want, float) or isinstance(got, float):
            if not isinstance(got, int | float) or abs(float(got) - float(want)) > 1e-9:
                return False
        elif got != want:
            return False
    return True


def read_object(s3: Any, bucket: str, key: str) -> bytes:
    try:
        data: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise from_aws(f"get s3://{bucket}/{key}", exc) from exc
    return data


def _etag_of(s3: Any, bucket: str, key: str) -> str | None:
    try:
        return str(s3.head_object(Bucket=bucket, Key=key)["ETag"])
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise from_aws(f"head s3://{bucket}/{key}", exc) from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise from_aws(f"head s3://{bucket}/{key}", exc) from exc


def _read_json(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        document = json.loads(read_object(s3, bucket, key))
    except ValueError:
        return None
    return document if isinstance(document, dict) else None
