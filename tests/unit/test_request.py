"""Every rule of the SDXL image-to-image request contract (bedrock-facts.md section 1)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from img2img.domain.errors import InvalidRequest
from img2img.domain.request import MAX_EXTRAS_DEPTH, MAX_SEED, ImageToImageRequest, parse_request, visible

pytestmark = pytest.mark.unit


def body(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"text_prompts": [{"text": "A space ship."}], "init_image": "aGVsbG8="}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def fields_of(data: Any) -> list[str]:
    with pytest.raises(InvalidRequest) as caught:
        parse_request(data)
    assert caught.value.status == 400 and caught.value.code == "invalid_request"
    return [d.field for d in caught.value.details]


def test_seed_document_body_is_valid_with_documented_defaults() -> None:
    request = parse_request(body(style_preset="isometric"))
    assert request.init_image_mode == "IMAGE_STRENGTH"
    assert request.effective_image_strength == 0.35
    assert (request.cfg_scale, request.steps, request.seed, request.samples) == (7.0, 30, 0, 1)
    assert request.resize_mode == "fit" and request.output_format == "png"
    assert request.text_prompts[0].weight == 1.0


@pytest.mark.parametrize(
    ("name", "inside", "outside"),
    [
        ("cfg_scale", [0, 35, 7.5], [-0.01, 35.01]),
        ("steps", [10, 50], [9, 51]),
        ("seed", [0, MAX_SEED], [-1, MAX_SEED + 1]),
        ("image_strength", [0, 1, 0.5], [-0.01, 1.01]),
    ],
)
def test_range_edges(name: str, inside: list[Any], outside: list[Any]) -> None:
    for value in inside:
        assert getattr(parse_request(body(**{name: value})), name) == value
    for value in outside:
        assert fields_of(body(**{name: value})) == [name]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("cfg_scale", "7"),
        ("steps", 30.5),
        ("steps", True),
        ("seed", "1"),
        ("text_prompts", "a cat"),
        ("text_prompts", [{"text": 5}]),
        ("extras", []),
        ("style_preset", "watercolour"),
        ("sampler", "EULER"),
        ("clip_guidance_preset", "FAST"),
        ("init_image_mode", "STRENGTH"),
        ("resize_mode", "stretch"),
        ("output_format", "gif"),
        ("init_image", 12),
    ],
)
def test_wrong_types_and_enum_values_name_the_field(name: str, value: Any) -> None:
    assert fields_of(body(**{name: value}))[0].startswith(name)


def test_samples_must_be_one() -> None:
    assert parse_request(body(samples=1)).samples == 1
    assert fields_of(body(samples=2)) == ["samples"]
    assert fields_of(body(samples=0)) == ["samples"]


def test_prompts() -> None:
    assert fields_of(body(text_prompts=[])) == ["text_prompts"]
    assert fields_of(body(text_prompts=[{"text": "x", "weight": -1.0}])) == ["text_prompts"]
    assert fields_of(body(text_prompts=[{"text": "x" * 2001}])) == ["text_prompts.0.text"]
    assert fields_of(body(text_prompts=[{"text": "x", "colour": 1}])) == ["text_prompts.0.colour"]
    request = parse_request(body(text_prompts=[{"text": "x" * 2000}, {"text": "blurry", "weight": -0.5}]))
    assert [p.text for p in request.negative_prompts] == ["blurry"]
    assert len(request.positive_prompts) == 1


def test_animé_is_accepted_as_anime() -> None:
    assert parse_request(body(style_preset="animé")).style_preset == "anime"


def test_exactly_one_source() -> None:
    assert fields_of(body(init_image=...)) == ["init_image"]
    assert fields_of(body(init_image_s3_key="inbox/a.png")) == ["init_image"]
    assert parse_request(body(init_image=..., init_image_s3_key="uploads/a.png")).init_image_s3_key


@pytest.mark.parametrize(
    "key",
    [
        "../secret.png",
        "inbox/../../x.png",
        "/etc/passwd",
        "s3://other-bucket/a.png",
        "arn:aws:s3:::b/k",
        "a//b.png",
        "./a",
    ],
)
def test_s3_key_stays_inside_the_input_bucket(key: str) -> None:
    assert fields_of(body(init_image=..., init_image_s3_key=key)) == ["init_image_s3_key"]


def test_step_schedule_rules() -> None:
    request = parse_request(
        body(init_image_mode="STEP_SCHEDULE", step_schedule_start=0.8, step_schedule_end=0.9)
    )
    assert request.effective_image_strength == pytest.approx(0.2)
    assert parse_request(body(init_image_mode="STEP_SCHEDULE")).effective_image_strength == pytest.approx(
        0.35
    )
    assert fields_of(
        body(init_image_mode="STEP_SCHEDULE", step_schedule_start=0.8, step_schedule_end=0.2)
    ) == ["step_schedule_end"]
    assert fields_of(body(init_image_mode="STEP_SCHEDULE", image_strength=0.5)) == ["image_strength"]
    assert fields_of(body(step_schedule_start=0.5)) == ["step_schedule_start"]


def test_clip_guidance_needs_an_ancestral_sampler() -> None:
    assert fields_of(body(clip_guidance_preset="SLOW")) == ["clip_guidance_preset"]
    assert fields_of(body(clip_guidance_preset="SLOW", sampler="K_EULER")) == ["clip_guidance_preset"]
    assert parse_request(body(clip_guidance_preset="SLOW", sampler="K_EULER_ANCESTRAL"))
    assert parse_request(body(clip_guidance_preset="NONE", sampler="DDIM"))


def test_non_object_bodies() -> None:
    assert fields_of([1, 2]) == ["body"]
    assert fields_of("text") == ["body"]


def test_bedrock_fields_leave_out_source_and_service_options() -> None:
    fields = parse_request(body(model_id="x", output_format="jpeg", extras={"a": 1})).bedrock_fields()
    assert not {"init_image", "init_image_s3_key", "model_id", "resize_mode", "output_format"} & set(fields)
    assert fields["extras"] == {"a": 1}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(ImageToImageRequest.model_fields)), json_values, max_size=8))
def test_any_json_is_either_a_valid_request_or_an_invalid_request_error(data: dict[str, Any]) -> None:
    try:
        request = parse_request(data)
    except InvalidRequest as error:
        assert error.details and all(d.field for d in error.details)
    else:
        assert request.samples == 1 and any(p.weight > 0 for p in request.text_prompts)


valid_prompts = st.lists(
    st.fixed_dictionaries({"text": st.text(max_size=50), "weight": st.floats(-2, 2, allow_nan=False)}),
    min_size=1,
    max_size=3,
)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    prompts=valid_prompts,
    cfg=st.floats(-5, 40, allow_nan=False),
    steps=st.integers(0, 60),
    seed=st.integers(-2, MAX_SEED + 2),
    strength=st.floats(-0.5, 1.5, allow_nan=False),
)
def test_numeric_rules_hold_for_any_value(
    prompts: list[dict[str, Any]], cfg: float, steps: int, seed: int, strength: float
) -> None:
    data = body(text_prompts=prompts, cfg_scale=cfg, steps=steps, seed=seed, image_strength=strength)
    ok = (
        0 <= cfg <= 35
        and 10 <= steps <= 50
        and 0 <= seed <= MAX_SEED
        and 0 <= strength <= 1
        and any(p["weight"] > 0 and visible(p["text"]) for p in prompts)
    )
    if ok:
        assert parse_request(data).cfg_scale == cfg
    else:
        with pytest.raises(InvalidRequest):
            parse_request(data)


def nested(depth: int) -> dict[str, Any]:
    """Containers `depth` deep, dicts and lists alternating."""
    inner: Any = {}
    for level in range(depth - 1):
        inner = [inner] if level % 2 else {"k": inner}
    return inner if isinstance(inner, dict) else {"k": inner}


def test_extras_nest_at_most_so_deep_as_the_job_record_can_hold() -> None:
    assert parse_request(body(extras=nested(MAX_EXTRAS_DEPTH))).extras is not None
    assert fields_of(body(extras=nested(MAX_EXTRAS_DEPTH + 1))) == ["extras"]
    assert fields_of(body(extras=nested(250))) == ["extras"]


@pytest.mark.parametrize("text", ["", "   ", "\u200b", "\u200d\u2060\n", "\x00\t", "\u202e"])
def test_a_prompt_that_shows_nothing_is_refused_naming_text_prompts(text: str) -> None:
    assert not visible(text)
    assert fields_of(body(text_prompts=[{"text": text}, {"text": "blurry", "weight": -1.0}])) == [
        "text_prompts"
    ]


def test_one_visible_character_is_a_prompt() -> None:
    assert parse_request(body(text_prompts=[{"text": "\u200bé"}])).text_prompts[0].text == "\u200bé"


def test_a_body_with_bad_fields_hears_about_the_rules_between_fields_too() -> None:
    data = body(steps=5, init_image_s3_key="uploads/x/a.png", text_prompts=[{"text": "x", "weight": -1.0}])
    assert sorted(fields_of(data)) == ["init_image", "steps", "text_prompts"]
