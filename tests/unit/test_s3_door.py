"""The S3 door's conventions: which keys start jobs, result keys, metadata and manifests."""

from __future__ import annotations

import json

import pytest

from img2img.domain.errors import InvalidRequest, MissingParameters
from img2img.domain.s3_door import (
    SourceObject,
    job_id_for,
    manifest_requests,
    output_keys,
    request_from_metadata,
    starts_jobs,
)

pytestmark = pytest.mark.unit


def test_only_objects_under_inbox_start_jobs() -> None:
    assert starts_jobs("inbox/a.png") and starts_jobs("inbox/x/y/b.jpg")
    assert not starts_jobs("inbox/") and not starts_jobs("inbox/folder/")
    assert not starts_jobs("uploads/a.png") and not starts_jobs("results/a.png") and not starts_jobs("a.png")


def test_result_keys_mirror_the_source_path_and_name() -> None:
    keys = output_keys("out", "inbox/trips/2026/cat photo.jpeg")
    assert keys.image_key(".png") == "results/trips/2026/cat photo.jpeg.png"
    assert keys.metadata_key == "results/trips/2026/cat photo.jpeg.json"
    named = output_keys("out", "uploads/u1.webp", manifest_key="inbox/batch/one.json")
    # Below a hash of the manifest's key (sha256("inbox/batch/one.json")[:16]), by the image's key.
    assert named.metadata_key == "manifest-results/feed850a4707df74/uploads/u1.webp.json"
    assert output_keys("out", "inbox/batch/one.json").metadata_key == "results/batch/one.json.json"


def test_no_two_sources_share_a_result_key() -> None:
    """The collisions of older schemes: same name with another extension, another prefix, a
    manifest's own metadata, one image named by two manifests, and two manifests whose paths
    joined with their images' keys are one string."""
    outputs = [
        output_keys("out", "inbox/a.png"),
        output_keys("out", "inbox/a.jpg"),
        output_keys("out", "inbox/a.json"),  # a (rejected) manifest
        output_keys("out", "uploads/a.png", manifest_key="inbox/a.json"),
        output_keys("out", "inbox/a.png", manifest_key="inbox/a.json"),
        output_keys("out", "uploads/a.png", manifest_key="inbox/b.json"),
        output_keys("out", "inbox/a.json/uploads/a.png"),  # an image in a folder named like a manifest
        # Two manifests whose joined paths would be the same string.
        output_keys("out", "sources/b.json/sources/c.png", manifest_key="inbox/a.json"),
        output_keys("out", "sources/c.png", manifest_key="inbox/a.json/sources/b.json"),
    ]
    keys = [k for o in outputs for k in (o.metadata_key, o.image_key(".png"), o.image_key(".webp"))]
    assert len(keys) == len(set(keys)), sorted(keys)


def test_job_id_is_deterministic_per_version_and_parameters() -> None:
    a = SourceObject("in", "inbox/a.png", "v1", "e")
    assert job_id_for(a, {"seed": 1}) == job_id_for(a, {"seed": 1})
    assert job_id_for(a, {"seed": 1}) != job_id_for(a, {"seed": 2})
    assert job_id_for(a, {"seed": 1}) != job_id_for(SourceObject("in", "inbox/a.png", "v2", "e"), {"seed": 1})


def test_metadata_becomes_an_sdxl_body() -> None:
    body = request_from_metadata(
        {
            "prompt": "a cat",
            "negative-prompt": "blurry",
            "style-preset": "anime",
            "image-strength": "0.6",
            "cfg-scale": "9",
            "seed": "42",
            "steps": "40",
            "sampler": "K_EULER",
            "model-id": "amazon.nova-canvas-v1:0",
            "resize-mode": "pad",
            "output-format": "webp",
            "mtime": "ignored",
        }
    )
    assert body == {
        "text_prompts": [{"text": "a cat", "weight": 1.0}, {"text": "blurry", "weight": -1.0}],
        "image_strength": 0.6,
        "cfg_scale": 9.0,
        "seed": 42,
        "steps": 40,
        "style_preset": "anime",
        "sampler": "K_EULER",
        "model_id": "amazon.nova-canvas-v1:0",
        "resize_mode": "pad",
        "output_format": "webp",
    }


def test_metadata_errors_name_the_metadata_key() -> None:
    with pytest.raises(MissingParameters) as missing:
        request_from_metadata({"style-preset": "anime"})
    assert missing.value.details[0].field == "x-amz-meta-prompt"
    with pytest.raises(InvalidRequest) as bad:
        request_from_metadata({"prompt": "x", "seed": "1.5", "steps": "many"})
    assert [d.field for d in bad.value.details] == ["x-amz-meta-seed", "x-amz-meta-steps"]
    assert [d.message for d in bad.value.details] == [
        "'1.5' is not a whole number",
        "'many' is not a whole number",
    ]


def test_every_bad_metadata_value_is_reported_at_once() -> None:
    """One fix for all: an unreadable number and an out-of-range one are named together."""
    with pytest.raises(InvalidRequest) as bad:
        request_from_metadata({"prompt": "x", "seed": "abc", "image-strength": "1.5", "cfg-scale": "x" * 500})
    fields = {d.field: d.message for d in bad.value.details}
    assert set(fields) == {"x-amz-meta-seed", "x-amz-meta-image-strength", "x-amz-meta-cfg-scale"}
    assert fields["x-amz-meta-seed"] == "'abc' is not a whole number"
    assert len(fields["x-amz-meta-cfg-scale"]) < 80  # a long value is quoted short, never echoed whole


def test_rfc2047_encoded_prompt_is_decoded() -> None:
    assert (
        request_from_metadata({"prompt": "=?UTF-8?B?Y2hhdCDDqXTDqQ==?="})["text_prompts"][0]["text"]
        == "chat été"
    )


def test_manifests() -> None:
    one = manifest_requests(
        json.dumps({"text_prompts": [{"text": "x"}], "init_image_s3_key": "uploads/a.png"}).encode(), 2
    )
    assert one == [{"text_prompts": [{"text": "x"}], "init_image_s3_key": "uploads/a.png"}]
    many = manifest_requests(
        json.dumps({"text_prompts": [], "init_image_s3_keys": ["a.png", "b.png", "a.png"]}).encode(), 2
    )
    assert [m["init_image_s3_key"] for m in many] == ["a.png", "b.png"]  # named twice: once
    for bad, field in [
        (b"{nope", "manifest"),
        (b"[1]", "manifest"),
        (json.dumps({"init_image_s3_keys": []}).encode(), "init_image_s3_keys"),
        (json.dumps({"init_image_s3_keys": ["a"], "init_image_s3_key": "b"}).encode(), "init_image_s3_keys"),
        (json.dumps({"init_image_s3_keys": ["a", "b", "c"]}).encode(), "init_image_s3_keys"),  # over 2
    ]:
        with pytest.raises(InvalidRequest) as caught:
            manifest_requests(bad, 2)
        assert caught.value.details[0].field == field
