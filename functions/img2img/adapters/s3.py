"""S3 access for both buckets: read sources (with a size cap checked before the body is read),
write results, presign downloads and uploads. Errors leave as domain errors."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from img2img.domain.errors import FieldError, ImageTooLarge, SourceNotFound, StorageError
from img2img.domain.ports import PresignedPost, StoredObject

# Without s3:ListBucket (the deployed roles have none, on purpose) S3 answers a missing key
# with 403 AccessDenied rather than 404 NoSuchKey: both mean "no such source" to a caller.
_MISSING = {"NoSuchKey", "404", "NotFound", "AccessDenied", "403"}


def gone_version(bucket: str, key: str, version_id: str) -> SourceNotFound:
    # Callers read messages: no bucket name (it holds the account id) and no key; the logs get them.
    return SourceNotFound(
        "the source image's dropped version no longer exists: it was deleted after it was dropped",
        [FieldError("init_image_s3_key", "this version of the object was deleted")],
        internal=f"s3://{bucket}/{key} version {version_id}",
    )


class ObjectStore:
    def __init__(self, client: Any) -> None:
        self._client = client

    def get(self, bucket: str, key: str, *, max_bytes: int, version_id: str | None = None) -> StoredObject:
        args: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            args["VersionId"] = version_id
        try:
            response = self._client.get_object(**args)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "NoSuchVersion":  # the dropped version was deleted: no retry brings it back
                raise gone_version(bucket, key, str(version_id)) from exc
            if code in _MISSING:
                raise SourceNotFound(
                    "init_image_s3_key names no object in the input bucket (never uploaded, or expired)",
                    [FieldError("init_image_s3_key", "no such object in the input bucket")],
                    internal=f"s3://{bucket}/{key}",
                ) from exc
            raise StorageError(f"could not read {key}", internal=f"s3://{bucket}/{key}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"could not read {key}", internal=f"s3://{bucket}/{key}: {exc}") from exc
        body = response["Body"]
        try:
            if response.get("ContentLength", 0) > max_bytes:
                raise ImageTooLarge(
                    f"the source is {response['ContentLength']} bytes; the limit is {max_bytes}",
                    [FieldError("init_image", f"larger than {max_bytes} bytes")],
                )
            data = body.read()
        finally:
            body.close()
        return _stored(bucket, key, data, response)

    def find(self, bucket: str, key: str) -> StoredObject | None:
        """An object of our own if it is there (a stored result), else None."""
        try:
            response = self._client.get_object(Bucket=bucket, Key=key)
            data = bytes(response["Body"].read())
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise StorageError(f"could not read {key}", internal=f"s3://{bucket}/{key}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"could not read {key}", internal=f"s3://{bucket}/{key}: {exc}") from exc
        return _stored(bucket, key, data, response)

    def put(
        self, bucket: str, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None = None
    ) -> str:
        """Write an object (with x-amz-meta-* `metadata`) and answer its ETag. botocore's
        retries cover transient faults."""
        extra = {"Metadata": metadata} if metadata else {}
        try:
            response = self._client.put_object(
                Bucket=bucket, Key=key, Body=data, ContentType=content_type, **extra
            )
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"could not write {key}", internal=f"s3://{bucket}/{key}: {exc}") from exc
        return str(response.get("ETag", "")).strip('"')

    def presign_get(self, bucket: str, key: str, expires_in: int) -> str:
        return str(
            self._client.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in
            )
        )

    def presign_post(
        self, bucket: str, key: str, *, content_type: str, max_bytes: int, expires_in: int
    ) -> PresignedPost:
        """A browser-style POST policy: this exact key, this content type, at most max_bytes."""
        post = self._client.generate_presigned_post(
            Bucket=bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
            ExpiresIn=expires_in,
        )
        return PresignedPost(url=str(post["url"]), fields={k: str(v) for k, v in post["fields"].items()})


def _stored(bucket: str, key: str, data: bytes, response: dict[str, Any]) -> StoredObject:
    return StoredObject(
        bucket=bucket,
        key=key,
        data=data,
        etag=str(response.get("ETag", "")).strip('"'),
        version_id=response.get("VersionId"),
        content_type=response.get("ContentType"),
        metadata=dict(response.get("Metadata") or {}),
    )
