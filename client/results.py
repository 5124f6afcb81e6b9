"""Waiting for a job to end, saving its image and metadata, and what the command says about it
(a few lines for people, one JSON object for --json, an exit code)."""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from img2img.vocabulary import FINAL_STATUSES
from img2img_client import errors
from img2img_client.api import Img2ImgApi
from img2img_client.drop import read_object
from img2img_client.errors import RequestRejected, ServiceFailed, Unreachable
from img2img_client.progress import Progress

FINAL = FINAL_STATUSES  # img2img/vocabulary.py
# An S3-door job has no record until a worker takes the dropped object: waiting for a job id
# that is not found yet goes on this long (at most --timeout) before the 404 counts.
NOT_FOUND_GRACE_SECONDS = 120.0
# A job that failed on its input is the request's fault (exit 4), not the service's (exit 1).
INPUT_ERROR_CODES = frozenset(
    {
        "invalid_request",
        "missing_parameters",
        "unsupported_image",
        "image_too_large",
        "source_not_found",
        "payload_too_large",
    }
)


@dataclass
class Outcome:
    """A job as the command reports it."""

    job_id: str | None
    status: str
    model_id: str | None = None
    seed: int | None = None
    image: Path | None = None
    metadata: Path | None = None
    error: dict[str, Any] | None = None
    notes: tuple[str, ...] = ()
    image_url: str | None = None  # presigned, when the job view gave one
    metadata_url: str | None = None
    image_s3_uri: str | None = None  # where the job view says they are
    metadata_s3_uri: str | None = None

    @property
    def exit_code(self) -> int:
        if self.status == "CONTENT_FILTERED":
            return errors.CONTENT_FILTERED
        if self.status == "FAILED":
            code = (self.error or {}).get("code")
            return errors.REJECTED if code in INPUT_ERROR_CODES else errors.JOB_FAILED
        return errors.OK

    @property
    def reason(self) -> str:
        """The one-line reason of a failure."""
        if self.status == "CONTENT_FILTERED":
            return (
                f"job {self.job_id} was CONTENT_FILTERED: "
                "the model's safety filter blocked the prompt or image"
            )
        error = self.error or {}
        code, message = error.get("code", "error"), error.get("message", "no reason given")
        return f"job {self.job_id} FAILED: {code}: {message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "status": self.status,
            "model_id": self.model_id,
            "seed": self.seed,
            "image": str(self.image) if self.image else None,
            "metadata": str(self.metadata) if self.metadata else None,
            "error": self.error,
            "notes": list(self.notes),
            "image_url": self.image_url,
            "metadata_url": self.metadata_url,
            "image_s3_uri": self.image_s3_uri,
            "metadata_s3_uri": self.metadata_s3_uri,
            "exit_code": self.exit_code,
        }

    def render(self) -> str:
        head = f"{self.status}  job {self.job_id}"
        facts = [
            f"model {self.model_id}" if self.model_id else "",
            f"seed {self.seed}" if self.seed is not None else "",
        ]
        facts = [f for f in facts if f]
        lines = [head + (f"  ({', '.join(facts)})" if facts else "")]
        image = self.image or self.image_url or self.image_s3_uri
        if image:
            lines.append(f"  image     {image}")
        metadata = self.metadata or self.metadata_url or self.metadata_s3_uri
        if metadata:
            lines.append(f"  metadata  {metadata}")
        if self.error and self.status != "CONTENT_FILTERED":
            lines.append(f"  error     {self.error.get('code')}: {self.error.get('message')}")
        lines.extend(f"  note      {note}" for note in self.notes)
        return "\n".join(lines)


def wait_for_job(
    api: Img2ImgApi,
    job_id: str,
    *,
    timeout: float,
    progress: Progress,
    sleep: Callable[[float], None] = time.sleep,
    again: str = "",
    not_found_grace: float = 0.0,
) -> dict[str, Any]:
    """Poll GET /v1/jobs/{id} until the job is final. Raises Unreachable past `timeout` (naming
    `again`, the command that waits on). A job not found is waited for `not_found_grace`
    seconds (an S3 drop's job appears when a worker takes it), then its 404 is the answer."""
    started = time.monotonic()
    deadline = started + timeout
    interval = 0.5
    while True:
        try:
            view = api.job(job_id)
        except RequestRejected as exc:
            waited = time.monotonic() - started
            if exc.code != "job_not_found" or waited >= min(not_found_grace, timeout):
                if exc.code == "job_not_found" and not_found_grace > 0:
                    exc.message += f" (waited {waited:.0f}s for it to appear)"
                raise
            progress.update(f"job {job_id[:12]} not found yet (a dropped image's job appears when taken)")
            sleep(interval)
            interval = min(interval * 1.5, 2.0)
            continue
        status = str(view.get("status", ""))
        progress.update(f"job {job_id[:12]} {status}")
        if status in FINAL:
            return view
        if time.monotonic() >= deadline:
            tail = f": {again}" if again else ""
            raise Unreachable(
                f"job {job_id} still {status} after {timeout:.0f}s; it goes on{tail}", code="timeout"
            )
        sleep(interval)
        interval = min(interval * 1.5, 2.0)


def result_name(stem: str, job_id: str) -> str:
    """Every result file the command writes is <stem>-<job id's first 8>.<ext>: `run` and `drop`
    name it after the local file, `status` after the job's source (`job` for an inline one)."""
    return f"{stem}-{job_id[:8]}"


def source_stem(view: Mapping[str, Any]) -> str:
    """The file name (without extension) of a job's source, as `status` knows it: the dropped
    or uploaded key's; `job` for a source sent inline (stored under api/<job id>/)."""
    key = str((view.get("request") or {}).get("init_image_s3_key") or "")
    return PurePosixPath(key).stem if key and not key.startswith("api/") else "job"


def save_job_files(
    api: Img2ImgApi,
    view: Mapping[str, Any],
    out_dir: Path,
    stem: str,
    progress: Progress,
    s3: Callable[[], Any] | None = None,
) -> tuple[Path | None, Path | None, dict[str, Any] | None]:
    """Download the result image and metadata of a final job view into out_dir. Answers their
    paths and the parsed metadata (None where the job has none). API jobs come with presigned
    URLs; S3-door jobs only say where they are (s3_uri), read with `s3()`, the caller's own
    S3 client (their AWS credentials, or local mode's endpoint)."""
    job_id = str(view["job_id"])
    name = result_name(stem, job_id)
    image_path = metadata_path = None
    metadata: dict[str, Any] | None = None
    if s3 is not None:
        s3 = functools.cache(s3)  # one client for both files, made only if needed
    image = view.get("image") or {}
    raw_image = _download(api, image, s3, progress, f"the image of job {job_id[:12]}")
    if raw_image is not None:
        suffix = PurePosixPath(str(image.get("s3_uri", ""))).suffix or ".png"
        image_path = write_file(out_dir / f"{name}{suffix}", raw_image)
    meta = view.get("metadata") or {}
    raw = _download(api, meta, s3, progress, f"the metadata of job {job_id[:12]}")
    if raw is not None:
        metadata_path = write_file(out_dir / f"{name}.json", raw)
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            raise ServiceFailed(f"the metadata of job {job_id} is not JSON") from exc
        metadata = parsed if isinstance(parsed, dict) else None
    return image_path, metadata_path, metadata


def _download(
    api: Img2ImgApi,
    where: Mapping[str, Any],
    s3: Callable[[], Any] | None,
    progress: Progress,
    what: str,
) -> bytes | None:
    """A presigned URL's bytes, else the s3_uri's through the caller's S3 client."""
    if where.get("url"):
        progress.update(f"downloading {what}")
        return api.fetch(str(where["url"]))
    bucket, key = split_s3_uri(str(where.get("s3_uri") or ""))
    if not bucket or not key or s3 is None:
        return None
    progress.update(f"downloading {what} from s3://{bucket}/{key}")
    return read_object(s3(), bucket, key)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/a/b.png` -> ("bucket", "a/b.png"); anything else -> ("", "")."""
    if not uri.startswith("s3://"):
        return "", ""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def outcome_of(
    view: Mapping[str, Any],
    metadata: Mapping[str, Any] | None,
    image: Path | None = None,
    metadata_path: Path | None = None,
) -> Outcome:
    """From a job view (GET /v1/jobs/{id}) and/or its metadata JSON (both doors write one)."""
    doc = metadata or {}
    result = view.get("result") or doc.get("result") or {}
    model = doc.get("model") or {}
    notes = tuple(str(n) for n in model.get("notes") or [])
    if model.get("emulated"):
        notes = ("emulated: local mode's Bedrock stand-in made this image, not a diffusion model", *notes)
    return Outcome(
        job_id=str(view.get("job_id") or doc.get("job_id") or "") or None,
        status=str(view.get("status") or doc.get("status") or "UNKNOWN"),
        model_id=view.get("model_id") or model.get("id") or None,
        seed=result.get("seed"),
        image=image,
        metadata=metadata_path,
        error=view.get("error") or doc.get("error"),
        notes=notes,
    )


def write_file(path: Path, data: bytes) -> Path:
    """Write atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    partial.write_bytes(data)
    os.replace(partial, path)
    return path
