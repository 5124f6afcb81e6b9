"""The S3 door's rules: which objects start jobs, where their parameters come from (a JSON
manifest, else the image's own metadata), and where results go.

Result keys are deterministic (a redelivered event writes the same keys) and no two sources
share one: the source's whole name, extension included, is kept.

    inbox/<path>/<name>.<ext>        -> results/<path>/<name>.<ext>.<fmt> and .<ext>.json
    inbox/<path>/<m>.json (manifest)  -> its jobs listed (or why it was refused): results/<path>/<m>.json.json
                                        each image it names, <key>:
                                        manifest-results/<h>/<key>.<fmt> and .json
                                        (<h>: the first 16 hex of the manifest key's sha256)
    a key whose result keys would pass S3's 1,024 bytes -> results/key-too-long/<sha256>.json

Images dropped under inbox/ never end in .json (that is a manifest), and manifest-named jobs
live under their own prefix, so no image, manifest or manifest-named job can reach another's
keys. A manifest's jobs live under a hash of its key, not its path: joining two keys with "/"
is ambiguous (inbox/a.json naming sources/b.json/sources/c.png and inbox/a.json/sources/b.json
naming sources/c.png would share keys). The output bucket is versioned: a job run again keeps
the earlier result as a version."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import decode_header
from typing import Any

from img2img.domain.errors import FieldError, InvalidRequest, MissingParameters, excerpt
from img2img.domain.job import OutputKeys, stable_id
from img2img.domain.request import ImageToImageRequest, parse_request
from img2img.vocabulary import (
    INBOX,
    MANIFEST_RESULTS,
    METADATA_NAMES,
    METADATA_NUMBERS,
    METADATA_TEXTS,
    NEGATIVE_PROMPT,
    PROMPT,
    RESULTS,
)

# request field -> the x-amz-meta-* name a user set it with (to name it in errors)
_SET_BY = {
    **{field: f"x-amz-meta-{name}" for field, name in METADATA_NAMES.items()},
    "text_prompts": f"x-amz-meta-{PROMPT}",
    "text_prompts.0.text": f"x-amz-meta-{PROMPT}",
    "text_prompts.1.text": f"x-amz-meta-{NEGATIVE_PROMPT}",
}
_NUMBER_WORDS = {int: "a whole number", float: "a number"}
MAX_KEY_BYTES = 1024  # S3's limit on an object key (UTF-8)


@dataclass(frozen=True)
class SourceObject:
    bucket: str
    key: str
    version_id: str | None
    etag: str
    principal: str | None = None  # who wrote it, as S3 names them (userIdentity.principalId)
    event_time: str | None = None  # when S3 says it was written: the job's created_at


@dataclass(frozen=True)
class Dropped:
    """Objects S3 says were created in the input bucket (read by handlers/queue_messages.py)."""

    objects: tuple[SourceObject, ...]


def is_manifest(key: str) -> bool:
    return key.lower().endswith(".json")


def starts_jobs(key: str) -> bool:
    """Only objects under inbox/ start jobs; folder markers do not."""
    return key.startswith(INBOX) and not key.endswith("/")


def output_keys(output_bucket: str, source_key: str, manifest_key: str | None = None) -> OutputKeys:
    """Where a job's result image and metadata JSON go (see the module's docstring). An object
    under inbox/ (image or manifest) keeps its path below results/; an image a manifest names
    lives below a hash of the manifest's key in manifest-results/, by its full key. Keys S3
    would refuse (over 1,024 bytes) are refused first, before any call."""
    if manifest_key is None:
        stem = f"{RESULTS}{source_key.removeprefix(INBOX)}"
    else:
        stem = f"{MANIFEST_RESULTS}{hashlib.sha256(manifest_key.encode()).hexdigest()[:16]}/{source_key}"
    if len(stem.encode()) + len(".webp") > MAX_KEY_BYTES:  # the longest extension a result takes
        raise InvalidRequest(
            f"the result keys would be longer than S3's {MAX_KEY_BYTES} bytes: use a shorter key",
            [FieldError("init_image_s3_key", f"too long for its result keys ({len(stem.encode())} bytes)")],
        )
    return OutputKeys(output_bucket, stem, f"{stem}.json")


def refusal_keys(output_bucket: str, source_key: str) -> OutputKeys:
    """Where a dropped object that starts no job says why: its own result keys, or, when they
    would not fit in S3's 1,024 bytes, results/key-too-long/<sha256 of its key>.json."""
    try:
        return output_keys(output_bucket, source_key)
    except InvalidRequest:
        stem = f"{RESULTS}key-too-long/{hashlib.sha256(source_key.encode()).hexdigest()}"
        return OutputKeys(output_bucket, stem, f"{stem}.json")


def job_id_for(source: SourceObject, body: dict[str, Any]) -> str:
    """The same object version with the same parameters is the same job."""
    return stable_id(source.bucket, source.key, source.version_id or source.etag, body)


def manifest_job_id(manifest: SourceObject, index: int) -> str:
    """The manifest's `index`th image: the same manifest version names the same job, so a
    redelivered manifest (or its message sent twice) finds the job's record and costs nothing."""
    return stable_id(manifest.bucket, manifest.key, manifest.version_id or manifest.etag, index)


def request_from_metadata(metadata: dict[str, str]) -> dict[str, Any]:
    """Build an SDXL body from x-amz-meta-* values. Names the metadata key on any error."""
    meta: dict[str, str] = {}
    for name, value in metadata.items():
        try:
            meta[name.lower()] = _decode(value)
        except (LookupError, UnicodeError, ValueError, HeaderParseError) as exc:
            raise InvalidRequest(
                "the image's metadata is not readable text",
                [FieldError(f"x-amz-meta-{name.lower()}", f"an RFC 2047 value that does not decode: {exc}")],
            ) from exc
    prompt = meta.get(PROMPT, "").strip()
    if not prompt:
        raise MissingParameters(
            "no parameters for this image: set a prompt in its metadata "
            '(aws s3 cp IMAGE s3://<input bucket>/inbox/ --metadata \'{"prompt": "..."}\') '
            "or drop a JSON manifest under inbox/ naming it in init_image_s3_key",
            [FieldError("x-amz-meta-prompt", "missing")],
        )
    prompts: list[dict[str, Any]] = [{"text": prompt, "weight": 1.0}]
    if meta.get(NEGATIVE_PROMPT, "").strip():
        prompts.append({"text": meta[NEGATIVE_PROMPT].strip(), "weight": -1.0})
    body: dict[str, Any] = {"text_prompts": prompts}
    unreadable: list[FieldError] = []
    for field, (name, parse) in METADATA_NUMBERS.items():
        if name in meta:
            try:
                body[field] = parse(meta[name].strip())
            except ValueError:
                shown = excerpt(meta[name])
                unreadable.append(FieldError(f"x-amz-meta-{name}", f"{shown} is not {_NUMBER_WORDS[parse]}"))
    for field, name in METADATA_TEXTS.items():
        if name in meta:
            body[field] = meta[name].strip()
    if unreadable:
        # Every bad value at once: the readable ones are checked too, so one fix does it all.
        others: list[FieldError] = []
        try:
            metadata_request({**body, "init_image_s3_key": f"{INBOX}source"})  # the image is there
        except InvalidRequest as error:
            others = error.details
        raise InvalidRequest("the image's metadata has values that are not valid", unreadable + others)
    return body


def metadata_request(body: dict[str, Any]) -> ImageToImageRequest:
    """parse_request for a body built from metadata: errors name the x-amz-meta-* key the
    user set, not the request field it became."""
    try:
        return parse_request(body)
    except InvalidRequest as error:
        error.details = [FieldError(_SET_BY.get(d.field, d.field), d.message) for d in error.details]
        raise


def manifest_requests(raw: bytes, max_images: int) -> list[dict[str, Any]]:
    """A manifest is an SDXL body with `init_image_s3_key`, or with `init_image_s3_keys` (a list)
    to run the same parameters over several images, at most `max_images`. Answers one body per
    image; an image named twice is one job."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidRequest("the manifest is not valid JSON", [FieldError("manifest", str(exc))]) from exc
    if not isinstance(document, dict):
        raise InvalidRequest("the manifest must be a JSON object", [FieldError("manifest", "not an object")])
    keys = document.pop("init_image_s3_keys", None)
    if keys is None:
        return [document]
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise InvalidRequest(
            "init_image_s3_keys must be a non-empty list of keys",
            [FieldError("init_image_s3_keys", "must be a non-empty list of strings")],
        )
    if "init_image_s3_key" in document or "init_image" in document:
        raise InvalidRequest(
            "give init_image_s3_keys alone, without init_image_s3_key or init_image",
            [FieldError("init_image_s3_keys", "conflicts with init_image_s3_key / init_image")],
        )
    keys = list(dict.fromkeys(keys))
    if len(keys) > max_images:
        raise InvalidRequest(
            f"a manifest names at most {max_images} images: split it into several manifests",
            [FieldError("init_image_s3_keys", f"names {len(keys)} images, more than {max_images}")],
        )
    return [{**document, "init_image_s3_key": key} for key in keys]


def _decode(value: str) -> str:
    """Some clients send non-ASCII metadata RFC 2047-encoded (=?UTF-8?B?...?=)."""
    if "=?" not in value:
        return value
    parts = decode_header(value)
    return "".join(p.decode(c or "utf-8") if isinstance(p, bytes) else p for p, c in parts)
