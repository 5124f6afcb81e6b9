from __future__ import annotations

import base64
from typing import Any

import pytest

from img2img.domain.errors import InvalidRequest, ModelError
from img2img.domain.ports import ModelCall
from img2img.engines import engine_for
from img2img.engines.control import control_sketch, control_structure
from img2img.engines.sd3 import sd3_5_large
from img2img.engines.stability import ImageRules, nearest_aspect_ratio
from img2img.engines.style_guide import style_guide
from img2img.engines.ultra import stable_image_ultra

pytestmark = pytest.mark.unit

MAX_PROMPT_CHARS = 10_000
MAX_SEED = 4_294_967_294
engine = sd3_5_large()
CALL = ModelCall(body={"seed": 77})
ALL = [sd3_5_large(), stable_image_ultra(), control_structure(), control_sketch(), style_guide()]


def test_minimal_request_translates_to_an_image_to_image_body(make_request, make_image) -> None:
    image = make_image(1216, 832)
    call = engine.build_body(make_request(seed=1234), image)
    assert call.body == {
        "prompt": "a red fox in snow",
        "mode": "image-to-image",
        "image": base64.b64encode(image.png).decode(),
        "strength": 0.65,  # the SDXL default image_strength 0.35, seen from SD3's side
        "seed": 1234,
        "output_format": "png",
    }
    assert call.notes == ()


def test_prompts_split_into_prompt_and_negative_prompt(make_request, make_image) -> None:
    request = make_request(
        text_prompts=[
            {"text": "a fox"},
            {"text": "blurry", "weight": -1},
            {"text": "in snow", "weight": 1},
            {"text": "text, watermark", "weight": -1.0},
        ]
    )
    call = engine.build_body(request, make_image())
    assert call.body["prompt"] == "a fox, in snow"
    assert call.body["negative_prompt"] == "blurry, text, watermark"
    assert call.notes == ()


SERVICES = [control_structure(), control_sketch(), style_guide()]
WEIGHTED = [
    {"text": "a fox", "weight": 0.7},
    {"text": "ignored", "weight": 0},
    {"text": "ugly", "weight": -2.5},
    {"text": "snow"},
]


def test_sd3_drops_weights_it_does_not_document_with_a_note_each(make_request, make_image) -> None:
    request = make_request(text_prompts=WEIGHTED)
    call = engine.build_body(request, make_image())
    assert call.body["prompt"] == "a fox, snow"
    assert call.body["negative_prompt"] == "ugly"
    assert call.notes == (
        "text_prompts[0] weight 0.7 dropped: sd3 has no prompt weights, "
        "the text joins the prompt at full weight",
        "text_prompts[1] has weight 0 and was dropped: sd3 has no prompt weights",
        "text_prompts[2] weight -2.5 dropped: sd3 has no prompt weights, "
        "the text joins the negative prompt at full weight",
    )


@pytest.mark.parametrize("engine", SERVICES, ids=lambda e: e.family)
def test_weights_other_than_one_are_written_as_word_weight_with_a_note_each(
    make_request, make_image, engine
) -> None:
    request = make_request(text_prompts=WEIGHTED)
    call = engine.build_body(request, make_image())
    assert call.body["prompt"] == "(a fox:0.7), snow"
    assert call.body["negative_prompt"] == "(ugly:2)"
    assert call.notes[:4] == (
        "text_prompts[0] weight 0.7 written as '(a fox:0.7)' in prompt",
        "text_prompts[1] has weight 0 and was dropped",
        f"text_prompts[2] weight -2.5 capped at 2: the largest {engine.family} documents",
        "text_prompts[2] weight -2.5 written as '(ugly:2)' in negative_prompt",
    )


@pytest.mark.parametrize(("image_strength", "strength"), [(0.0, 1.0), (0.35, 0.65), (0.8, 0.2), (1.0, 0.0)])
def test_strength_is_one_minus_image_strength(make_request, make_image, image_strength, strength) -> None:
    body = engine.build_body(make_request(image_strength=image_strength), make_image()).body
    assert body["strength"] == pytest.approx(strength)


def test_step_schedule_start_is_the_strength_and_the_end_is_dropped(make_request, make_image) -> None:
    request = make_request(init_image_mode="STEP_SCHEDULE", step_schedule_start=0.3, step_schedule_end=0.8)
    call = engine.build_body(request, make_image())
    assert call.body["strength"] == pytest.approx(0.3)
    assert call.notes == ("step_schedule_end 0.8 dropped: sd3 has no schedule end, only strength",)


def test_largest_sdxl_seed_is_clamped_with_a_note(make_request, make_image) -> None:
    call = engine.build_body(make_request(seed=4294967295), make_image())
    assert call.body["seed"] == MAX_SEED == 4294967294
    assert call.notes == ("seed 4294967295 clamped to 4294967294: the largest seed sd3 takes",)


def test_ultra_takes_every_sdxl_seed(make_request, make_image) -> None:
    call = stable_image_ultra().build_body(make_request(seed=4294967295), make_image())
    assert (call.body["seed"], call.notes) == (4294967295, ())


@pytest.mark.parametrize("seed", [0, 1, MAX_SEED])
def test_seeds_in_range_pass_unchanged(make_request, make_image, seed) -> None:
    call = engine.build_body(make_request(seed=seed), make_image())
    assert (call.body["seed"], call.notes) == (seed, ())


@pytest.mark.parametrize(
    ("field", "value", "note"),
    [
        ("cfg_scale", 7.0, "cfg_scale 7.0 dropped: sd3 has no cfg_scale"),
        ("sampler", "K_HEUN", "sampler 'K_HEUN' dropped: sd3 picks its own sampler"),
        ("steps", 50, "steps 50 dropped: sd3 has no steps setting"),
        ("extras", {"a": 1}, "extras {'a': 1} dropped: sd3 takes no extra parameters"),
    ],
)
def test_each_unsupported_field_the_caller_set_gets_a_note(
    make_request, make_image, field, value, note
) -> None:
    call = engine.build_body(make_request(**{field: value}), make_image())
    assert call.notes == (note,)
    assert field not in call.body


def test_clip_guidance_gets_a_note(make_request, make_image) -> None:
    request = make_request(clip_guidance_preset="SLOW", sampler="K_DPM_2_ANCESTRAL")
    notes = engine.build_body(request, make_image()).notes
    assert notes == (
        "sampler 'K_DPM_2_ANCESTRAL' dropped: sd3 picks its own sampler",
        "clip_guidance_preset 'SLOW' dropped: sd3 has no CLIP guidance",
    )


def test_style_preset_is_approximated_in_the_prompt(make_request, make_image) -> None:
    call = engine.build_body(make_request(style_preset="pixel-art"), make_image())
    assert call.body["prompt"] == "a red fox in snow, pixel art"
    assert call.notes == (
        "style_preset 'pixel-art' approximated: sd3 has no style presets, 'pixel art' appended to the prompt",
    )


def test_style_preset_is_dropped_when_the_prompt_is_full(make_request, make_image) -> None:
    texts = [{"text": "x" * 2000}] * 4 + [{"text": "y" * (MAX_PROMPT_CHARS - 4 * 2002)}]
    request = make_request(text_prompts=texts, style_preset="anime")
    call = engine.build_body(request, make_image())
    assert len(call.body["prompt"]) == MAX_PROMPT_CHARS
    assert call.notes == (
        "style_preset 'anime' dropped: sd3 has no style presets and the prompt has no room",
    )


@pytest.mark.parametrize("weight", [1.0, -1.0])
def test_a_joined_text_over_ten_thousand_characters_is_rejected_before_any_call(
    make_request, make_image, weight
) -> None:
    texts = [{"text": "a"}] + [{"text": "x" * 2000, "weight": weight}] * 6
    with pytest.raises(InvalidRequest) as caught:
        engine.build_body(make_request(text_prompts=texts), make_image())
    [detail] = caught.value.details
    assert detail.field == "text_prompts"
    assert "10000" in detail.message


def test_an_empty_prompt_is_rejected(make_request, make_image) -> None:
    with pytest.raises(InvalidRequest) as caught:
        engine.build_body(make_request(text_prompts=[{"text": "  "}]), make_image())
    assert caught.value.details[0].field == "text_prompts"


def payload(make_image, reason: Any = None, **fields: Any) -> dict[str, Any]:
    body = {
        "seeds": [321],
        "finish_reasons": [reason],
        "images": [base64.b64encode(make_image(8, 8).png).decode()],
    }
    body.update(fields)
    return body


def test_parse_success(make_image) -> None:
    artifact = engine.parse_response(payload(make_image), CALL)
    assert (artifact.seed, artifact.finish_reason, artifact.detail) == (321, "SUCCESS", None)
    assert artifact.image == make_image(8, 8).png


@pytest.mark.parametrize(
    "reason", ["Filter reason: prompt", "Filter reason: output image", "Filter reason: input image"]
)
def test_parse_filter_reasons(make_image, reason: str) -> None:
    artifact = engine.parse_response(payload(make_image, reason), CALL)
    assert (artifact.finish_reason, artifact.detail) == ("CONTENT_FILTERED", reason)


def test_parse_inference_error_without_image(make_image) -> None:
    artifact = engine.parse_response(payload(make_image, "Inference error", images=[]), CALL)
    assert (artifact.finish_reason, artifact.detail, artifact.image) == ("ERROR", "Inference error", b"")


@pytest.mark.parametrize(
    "fields",
    [
        {"seeds": None},
        {"seeds": []},
        {"seeds": ["1"]},
        {"finish_reasons": None},
        {"finish_reasons": [404]},
        {"images": None},
        {"images": []},
        {"images": ["%%%"]},
        {"images": [17]},
    ],
)
def test_garbled_response_is_a_model_error(make_image, fields: dict[str, Any]) -> None:
    broken = {k: v for k, v in {**payload(make_image), **fields}.items() if v is not None}
    with pytest.raises(ModelError):
        engine.parse_response(broken, CALL)


# --- what differs between the models -------------------------------------------------------


@pytest.mark.parametrize(
    ("engine", "field", "value"),
    [
        (stable_image_ultra(), "strength", 0.65),  # 0 keeps the source: 1 - image_strength
        (control_structure(), "control_strength", 0.35),  # 1 keeps the structure: image_strength
        (control_sketch(), "control_strength", 0.35),
        (style_guide(), "fidelity", 0.35),
    ],
    ids=lambda v: getattr(v, "family", str(v)),
)
def test_each_model_gets_its_own_strength_knob(make_request, make_image, engine, field, value) -> None:
    body = engine.build_body(make_request(), make_image()).body
    assert body[field] == pytest.approx(value)
    assert {"strength", "control_strength", "fidelity"} & set(body) == {field}
    assert "mode" not in body


@pytest.mark.parametrize(
    "engine", [control_structure(), control_sketch(), style_guide()], ids=lambda e: e.family
)
def test_image_services_take_style_presets_natively(make_request, make_image, engine) -> None:
    call = engine.build_body(make_request(style_preset="pixel-art"), make_image())
    assert call.body["style_preset"] == "pixel-art"
    assert call.body["prompt"] == "a red fox in snow"
    assert not any("style_preset" in note for note in call.notes)


@pytest.mark.parametrize("engine", [sd3_5_large(), stable_image_ultra()], ids=lambda e: e.family)
def test_models_without_presets_get_the_style_in_words(make_request, make_image, engine) -> None:
    call = engine.build_body(make_request(style_preset="pixel-art"), make_image())
    assert "style_preset" not in call.body
    assert call.body["prompt"] == "a red fox in snow, pixel art"


@pytest.mark.parametrize(
    ("size", "ratio"),
    [
        ((1024, 1024), "1:1"),
        ((1344, 768), "16:9"),
        ((1536, 640), "21:9"),
        ((832, 1216), "2:3"),
        ((640, 1536), "9:21"),
    ],
)
def test_style_guide_sends_the_aspect_ratio_nearest_the_source(make_request, make_image, size, ratio) -> None:
    call = style_guide().build_body(make_request(), make_image(*size))
    assert call.body["aspect_ratio"] == nearest_aspect_ratio(*size) == ratio
    assert any(note.startswith(f"aspect_ratio '{ratio}' sent") for note in call.notes)


@pytest.mark.parametrize(
    ("size", "rule"),
    [
        ((63, 512), "at least 64 pixels"),
        ((4096, 4096), "at most 9437184 pixels"),
        ((1300, 512), "aspect ratio"),
    ],
)
@pytest.mark.parametrize("engine", ALL, ids=lambda e: e.family)
def test_a_source_the_model_cannot_take_is_refused_naming_the_rule(
    make_request, make_image, engine, size, rule
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        engine.build_body(make_request(), make_image(*size))
    [detail] = caught.value.details
    assert detail.field == "init_image" and rule in detail.message and engine.family in detail.message


def test_image_rules_admit_every_sdxl_size(make_image) -> None:
    for size in [(1024, 1024), (1152, 896), (1216, 832), (1344, 768), (1536, 640), (640, 1536)]:
        ImageRules().check(make_image(*size), "any")


@pytest.mark.parametrize("engine", ALL, ids=lambda e: e.family)
def test_a_filtered_answer_without_seeds_or_images_is_content_filtered(engine) -> None:
    artifact = engine.parse_response({"finish_reasons": ["Filter reason: prompt"]}, CALL)
    assert (artifact.finish_reason, artifact.detail, artifact.image) == (
        "CONTENT_FILTERED",
        "Filter reason: prompt",
        b"",
    )
    assert artifact.seed == 77  # the seed that was asked for: the answer has none


def test_the_registry_serves_these_engines() -> None:
    for one in ALL:
        assert engine_for(one.model_ids[0]).family == one.family
