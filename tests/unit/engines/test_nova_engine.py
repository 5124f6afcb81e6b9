from __future__ import annotations

import base64
import random
from typing import Any

import pytest

from img2img.domain.errors import InvalidRequest, ModelError
from img2img.engines.base import ModelCall
from img2img.engines.nova import (
    MAX_SEED,
    TITAN_SIZES,
    nearest_size,
    nova_canvas,
    similarity_strength,
    titan_image_v2,
)

pytestmark = pytest.mark.unit

SIMILARITY_NOTE = (
    "image_strength 0.35 mapped to similarityStrength 0.48 (0.2 + 0.8 x image_strength: nova keeps at least "
    "0.2 of the source)"
)


def test_minimal_request_translates_to_an_image_variation_body(make_request, make_image) -> None:
    image = make_image(1344, 768)
    call = nova_canvas().build_body(make_request(seed=42), image)
    assert call.body == {
        "taskType": "IMAGE_VARIATION",
        "imageVariationParams": {
            "images": [base64.b64encode(image.png).decode()],
            "text": "a red fox in snow",
            "similarityStrength": 0.48,
        },
        "imageGenerationConfig": {
            "numberOfImages": 1,
            "width": 1344,
            "height": 768,
            "cfgScale": 7.0,
            "seed": 42,
        },
    }
    assert call.notes == (SIMILARITY_NOTE,)


@pytest.mark.parametrize(("image_strength", "similarity"), [(0.0, 0.2), (0.35, 0.48), (0.5, 0.6), (1.0, 1.0)])
def test_similarity_maps_image_strength_onto_its_range(image_strength: float, similarity: float) -> None:
    assert similarity_strength(image_strength) == pytest.approx(similarity)


def test_step_schedule_maps_through_the_effective_image_strength(make_request, make_image) -> None:
    request = make_request(
        init_image_mode="STEP_SCHEDULE", step_schedule_start=0.75, step_schedule_end=1.0, seed=5
    )
    call = nova_canvas().build_body(request, make_image())
    assert call.body["imageVariationParams"]["similarityStrength"] == pytest.approx(0.4)
    assert "step_schedule_end 1.0 dropped: nova has no schedule end, only similarityStrength" in call.notes


def test_prompts_split_into_text_and_negative_text_and_weights_are_noted(make_request, make_image) -> None:
    request = make_request(
        text_prompts=[{"text": "fox"}, {"text": "snow", "weight": 2}, {"text": "blur", "weight": -1}], seed=9
    )
    call = nova_canvas().build_body(request, make_image())
    params = call.body["imageVariationParams"]
    assert (params["text"], params["negativeText"]) == ("fox, snow", "blur")
    assert call.notes[0] == (
        "text_prompts[1] weight 2 dropped: nova has no prompt weights, "
        "the text joins the prompt at full weight"
    )


def test_empty_text_is_left_out(make_request, make_image) -> None:
    call = nova_canvas().build_body(make_request(text_prompts=[{"text": ""}], seed=3), make_image())
    assert "text" not in call.body["imageVariationParams"]


@pytest.mark.parametrize(("factory", "limit"), [(nova_canvas, 1024), (titan_image_v2, 512)])
def test_text_at_the_limit_passes_and_one_more_character_is_rejected(
    make_request, make_image, factory, limit
):
    engine = factory()
    exact = make_request(text_prompts=[{"text": "x" * limit}], seed=1)
    assert len(engine.build_body(exact, make_image()).body["imageVariationParams"]["text"]) == limit
    too_long = make_request(text_prompts=[{"text": "x" * (limit - 2)}, {"text": "y"}], seed=1)
    with pytest.raises(InvalidRequest) as caught:
        engine.build_body(too_long, make_image())
    [detail] = caught.value.details
    assert detail.field == "text_prompts"
    assert f"at most {limit} characters of prompt" in detail.message


def test_a_long_negative_text_is_rejected(make_request, make_image) -> None:
    request = make_request(text_prompts=[{"text": "fox"}, {"text": "n" * 1025, "weight": -1}])
    with pytest.raises(InvalidRequest) as caught:
        nova_canvas().build_body(request, make_image())
    assert caught.value.details[0].field == "text_prompts"
    assert "negative prompt" in caught.value.details[0].message


@pytest.mark.parametrize(("cfg", "sent"), [(0.0, 1.1), (1.0, 1.1), (35.0, 10.0), (10.5, 10.0)])
def test_cfg_scale_outside_the_range_is_clamped_with_a_note(make_request, make_image, cfg, sent) -> None:
    call = nova_canvas().build_body(make_request(cfg_scale=cfg, seed=1), make_image())
    assert call.body["imageGenerationConfig"]["cfgScale"] == sent
    assert f"cfg_scale {cfg:g} clamped to {sent:g}: nova takes 1.1..10" in call.notes


@pytest.mark.parametrize("cfg", [1.1, 7.0, 10.0])
def test_cfg_scale_in_range_passes_without_a_note(make_request, make_image, cfg) -> None:
    call = nova_canvas().build_body(make_request(cfg_scale=cfg, seed=1), make_image())
    assert call.body["imageGenerationConfig"]["cfgScale"] == cfg
    assert call.notes == (SIMILARITY_NOTE,)


def test_seed_zero_gets_a_picked_seed_that_is_reported_back(make_request, make_image) -> None:
    expected = random.Random(7).randint(1, MAX_SEED)
    engine = nova_canvas(rng=random.Random(7))
    call = engine.build_body(make_request(seed=0), make_image())
    assert call.body["imageGenerationConfig"]["seed"] == expected
    assert f"seed 0 (random): nova has no random seed, the service picked {expected}" in call.notes
    artifact = engine.parse_response({"images": [base64.b64encode(b"png").decode()]}, call)
    assert artifact.seed == expected


@pytest.mark.parametrize(("seed", "folded"), [(MAX_SEED + 1, 1), (4294967295, 3), (MAX_SEED * 2, MAX_SEED)])
def test_seeds_above_the_range_fold_into_it_with_a_note(make_request, make_image, seed, folded) -> None:
    call = nova_canvas().build_body(make_request(seed=seed), make_image())
    assert call.body["imageGenerationConfig"]["seed"] == folded
    assert f"seed {seed} folded to {folded}: nova takes seeds up to {MAX_SEED}" in call.notes


@pytest.mark.parametrize("seed", [1, MAX_SEED])
def test_seeds_in_range_pass_unchanged(make_request, make_image, seed) -> None:
    call = nova_canvas().build_body(make_request(seed=seed), make_image())
    assert call.body["imageGenerationConfig"]["seed"] == seed


def test_unsupported_fields_the_caller_set_are_noted(make_request, make_image) -> None:
    request = make_request(
        sampler="K_EULER_ANCESTRAL", steps=25, clip_guidance_preset="SIMPLE", extras={"k": "v"}, seed=1
    )
    notes = nova_canvas().build_body(request, make_image()).notes
    assert notes[1:] == (
        "sampler 'K_EULER_ANCESTRAL' dropped: nova picks its own sampler",
        "steps 25 dropped: nova has no steps setting",
        "clip_guidance_preset 'SIMPLE' dropped: nova has no CLIP guidance",
        "extras {'k': 'v'} dropped: nova takes no extra parameters",
    )


def test_style_preset_is_appended_to_the_text(make_request, make_image) -> None:
    call = nova_canvas().build_body(make_request(style_preset="origami", seed=1), make_image())
    assert call.body["imageVariationParams"]["text"] == "a red fox in snow, origami paper style"
    assert (
        "style_preset 'origami' approximated: nova has no style presets, "
        "'origami paper style' appended to the prompt" in call.notes
    )


def test_style_preset_is_dropped_when_the_text_is_full(make_request, make_image) -> None:
    request = make_request(text_prompts=[{"text": "x" * 510}], style_preset="anime", seed=1)
    call = titan_image_v2().build_body(request, make_image())
    assert call.body["imageVariationParams"]["text"] == "x" * 510
    assert "style_preset 'anime' dropped: titan has no style presets and the prompt has no room" in call.notes


@pytest.mark.parametrize(("width", "height"), [(1000, 1000), (304, 1024), (4096, 2048), (2048, 336)])
def test_nova_rejects_sizes_it_cannot_generate(make_request, make_image, width, height) -> None:
    with pytest.raises(InvalidRequest) as caught:
        nova_canvas().build_body(make_request(seed=1), make_image(width, height))
    assert caught.value.details[0].field == "init_image"


def test_titan_keeps_a_listed_size(make_request, make_image) -> None:
    call = titan_image_v2().build_body(make_request(seed=1), make_image(1152, 896))
    config = call.body["imageGenerationConfig"]
    assert (config["width"], config["height"]) == (1152, 896)
    assert not any("output size" in note for note in call.notes)


def test_titan_picks_the_nearest_listed_size_with_a_note(make_request, make_image) -> None:
    call = titan_image_v2().build_body(make_request(seed=1), make_image(1344, 768))
    config = call.body["imageGenerationConfig"]
    assert (config["width"], config["height"]) == (1152, 640)
    assert (
        "output size 1152x640 instead of 1344x768: titan generates only fixed sizes, "
        "the one nearest in aspect ratio was chosen" in call.notes
    )


@pytest.mark.parametrize(
    ("size", "nearest"),
    [
        ((1024, 1024), (1024, 1024)),
        ((640, 1536), (640, 1408)),
        ((832, 1216), (768, 1152)),
        ((1536, 640), (1408, 640)),
    ],
)
def test_nearest_size_prefers_aspect_ratio_then_area(size, nearest) -> None:
    assert nearest_size(size, TITAN_SIZES) == nearest


def call_with_seed(seed: int) -> ModelCall:
    return ModelCall(body={"imageGenerationConfig": {"seed": seed}})


def test_parse_success_reports_the_seed_sent(make_image) -> None:
    png = make_image(8, 8).png
    artifact = nova_canvas().parse_response({"images": [base64.b64encode(png).decode()]}, call_with_seed(99))
    assert (artifact.seed, artifact.image, artifact.finish_reason, artifact.detail) == (
        99,
        png,
        "SUCCESS",
        None,
    )


@pytest.mark.parametrize(
    "error",
    [
        "This request has been blocked by our content filters. Please adjust your text prompt.",
        "The generated image has been blocked by our Content Filters.",
    ],
)
def test_parse_content_filter_error(error: str) -> None:
    artifact = nova_canvas().parse_response({"images": [], "error": error}, call_with_seed(5))
    assert (artifact.finish_reason, artifact.detail, artifact.image) == ("CONTENT_FILTERED", error, b"")


def test_parse_other_error_keeps_any_image(make_image) -> None:
    png = make_image(8, 8).png
    payload = {"images": [base64.b64encode(png).decode()], "error": "Something went wrong"}
    artifact = titan_image_v2().parse_response(payload, call_with_seed(5))
    assert (artifact.finish_reason, artifact.detail, artifact.image) == ("ERROR", "Something went wrong", png)


@pytest.mark.parametrize(
    "payload",
    [{}, {"images": []}, {"images": "x"}, {"images": ["@@@"]}, {"images": [None]}, {"error": 500}],
)
def test_garbled_response_is_a_model_error(payload: dict[str, Any]) -> None:
    with pytest.raises(ModelError):
        nova_canvas().parse_response(payload, call_with_seed(1))
