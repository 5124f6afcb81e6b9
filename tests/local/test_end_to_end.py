"""Local mode end to end, over real HTTP and real boto3 clients: both doors with the real
handlers, the Bedrock emulator's call count as the bill, retries and the dead-letter queue."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from jsonschema import Draft202012Validator
from PIL import Image

from img2img.domain.records import metadata_schema
from img2img_local import resources as r
from img2img_local.runner import LocalStack, start_local
from tests import imagegen
from tests.handlers.sqs_events import s3_notification
from tests.local.conftest import wait_until

pytestmark = pytest.mark.local

# The seed document's sample request body, field for field (its image is ours).
SEED_BODY = {"text_prompts": [{"text": "A space ship."}], "style_preset": "isometric"}


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    settings = r.QueueSettings(visibility_timeout_seconds=2, max_receive_count=3)
    with start_local(  # a 2 s worker (the visibility bounds it) keeps 0.5 s back, not 3
        api_port=0,
        aws_port=0,
        bedrock_port=0,
        queue_settings=settings,
        batch_size=10,
        model_reserve_seconds=0.5,
    ) as running:
        running.wait_healthy(timeout=30)
        yield running


@pytest.fixture(autouse=True)
def clean_emulator(stack: LocalStack) -> Iterator[None]:
    requests.post(f"{stack.bedrock_url}/_emulator/reset", timeout=5)
    yield
    requests.post(f"{stack.bedrock_url}/_emulator/reset", timeout=5)


def stats(stack: LocalStack) -> dict[str, Any]:
    return requests.get(f"{stack.bedrock_url}/_emulator/stats", timeout=5).json()


def faults(stack: LocalStack, **settings: Any) -> None:
    requests.post(f"{stack.bedrock_url}/_emulator/faults", json=settings, timeout=5).raise_for_status()


def post(stack: LocalStack, path: str, body: Any, **kw: Any) -> requests.Response:
    return requests.post(f"{stack.api_url}{path}", json=body, timeout=60, **kw)


def result_json(stack: LocalStack, key: str, timeout: float = 30) -> dict[str, Any]:
    s3 = stack.client("s3")

    def read() -> dict[str, Any] | None:
        try:
            return json.loads(s3.get_object(Bucket=r.OUTPUT_BUCKET, Key=key)["Body"].read())
        except s3.exceptions.NoSuchKey:
            return None

    document: dict[str, Any] = wait_until(read, timeout=timeout)
    Draft202012Validator(metadata_schema()).validate(document)  # the published schema holds
    return document


def test_seed_body_unchanged_gets_bedrocks_response_shape(stack: LocalStack) -> None:
    body = {**SEED_BODY, "init_image": base64.b64encode(imagegen.png(1024, 1024)).decode()}
    response = post(stack, "/v1/image-to-image", body)
    assert response.status_code == 200, response.text
    payload = response.json()
    # What the seed's own client reads: result, artifacts[0].base64, artifacts[0].finishReason.
    assert payload["result"] == "success"
    artifact = payload["artifacts"][0]
    assert artifact["finishReason"] == "SUCCESS" and artifact["seed"] > 0
    image = Image.open(io.BytesIO(base64.b64decode(artifact["base64"])))
    assert image.size == (1024, 1024)
    metadata = requests.get(payload["metadata"]["url"], timeout=10).json()
    assert metadata["model"]["emulated"] is True and metadata["model"]["engine"] == "sd3"
    assert stats(stack)["by_model"] == {r.DEFAULT_MODEL_ID: 1}


@pytest.mark.parametrize("model_id", r.ALLOWED_MODEL_IDS)
def test_every_live_model_takes_the_seed_body_unchanged_through_both_doors(
    stack: LocalStack, model_id: str
) -> None:
    source = imagegen.png(1024, 1024)
    body = {**SEED_BODY, "init_image": base64.b64encode(source).decode(), "model_id": model_id}
    response = post(stack, "/v1/image-to-image", body)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "SUCCEEDED" and response.json()["artifacts"][0]["base64"]
    name = model_id.replace(":", "-")
    stack.client("s3").put_object(
        Bucket=r.INPUT_BUCKET,
        Key=f"inbox/models/{name}.png",
        Body=source,
        Metadata={"prompt": "A space ship.", "style-preset": "isometric", "model-id": model_id},
    )
    metadata = result_json(stack, f"results/models/{name}.png.json")
    assert metadata["status"] == "SUCCEEDED" and metadata["model"]["id"] == model_id
    assert stats(stack)["by_model"] == {model_id: 2}  # one call per job, one job per door


@pytest.mark.parametrize("model_id", r.ALLOWED_MODEL_IDS)
def test_each_models_documented_filtered_answer_is_content_filtered_on_both_doors(
    stack: LocalStack, model_id: str
) -> None:
    faults(
        stack, filter_word="space ship"
    )  # the emulator answers {"finish_reasons": ["Filter reason: prompt"]}
    source = imagegen.png(1024, 1024)
    body = {**SEED_BODY, "init_image": base64.b64encode(source).decode(), "model_id": model_id}
    response = post(stack, "/v1/image-to-image", body)
    assert response.status_code == 200, response.text
    artifact = response.json()["artifacts"][0]
    assert artifact["finishReason"] == "CONTENT_FILTERED" and response.json()["status"] == "CONTENT_FILTERED"
    name = "filtered-" + model_id.replace(":", "-")
    stack.client("s3").put_object(
        Bucket=r.INPUT_BUCKET,
        Key=f"inbox/models/{name}.png",
        Body=source,
        Metadata={"prompt": "A space ship.", "model-id": model_id},
    )
    metadata = result_json(stack, f"results/models/{name}.png.json")
    assert metadata["status"] == "CONTENT_FILTERED"
    assert metadata["result"]["detail"] == "Filter reason: prompt"


def test_job_through_the_queue(stack: LocalStack) -> None:
    body = {
        **SEED_BODY,
        "init_image": base64.b64encode(imagegen.jpeg(800, 600)).decode(),
        "output_format": "webp",
    }
    response = post(stack, "/v1/jobs", body)
    assert response.status_code == 202
    job_id = response.json()["job_id"]

    def final() -> dict[str, Any] | None:
        view = requests.get(f"{stack.api_url}/v1/jobs/{job_id}", timeout=10).json()
        return view if view["status"] in ("SUCCEEDED", "FAILED", "CONTENT_FILTERED") else None

    view = wait_until(final, timeout=30)
    assert view["status"] == "SUCCEEDED", view
    image = requests.get(view["image"]["url"], timeout=10)
    assert Image.open(io.BytesIO(image.content)).format == "WEBP"


def test_s3_drop_with_metadata(stack: LocalStack) -> None:
    s3 = stack.client("s3")
    key = "inbox/holiday snaps/café+1.png"
    s3.put_object(
        Bucket=r.INPUT_BUCKET,
        Key=key,
        Body=imagegen.png(640, 480),
        Metadata={"prompt": "a lighthouse", "style-preset": "origami", "seed": "7"},
    )
    meta = result_json(stack, "results/holiday snaps/café+1.png.json")
    assert meta["status"] == "SUCCEEDED" and meta["source"]["key"] == key
    assert meta["result"]["seed"] == 7 and meta["request"]["style_preset"] == "origami"
    s3.head_object(Bucket=r.OUTPUT_BUCKET, Key="results/holiday snaps/café+1.png.png")
    job = requests.get(f"{stack.api_url}/v1/jobs/{meta['job_id']}", timeout=10).json()
    assert job["status"] == "SUCCEEDED" and job["door"] == "s3"


def test_a_manifest_fans_out_one_job_per_image(stack: LocalStack) -> None:
    """Three images (this stack's worker has 2 s for a batch of up to 10): each its own job,
    queued by the worker's SendMessageBatch; the manifest's event delivered again sends nothing
    more and costs no call."""
    s3, sqs = stack.client("s3"), stack.client("sqs")
    keys = [f"sources/fan/{n:02}.png" for n in range(3)]
    for key in keys:
        s3.put_object(Bucket=r.INPUT_BUCKET, Key=key, Body=imagegen.png(64, 64))
    manifest = {"text_prompts": [{"text": "watercolour"}], "init_image_s3_keys": keys}
    put = s3.put_object(Bucket=r.INPUT_BUCKET, Key="inbox/fan.json", Body=json.dumps(manifest).encode())
    listing = wait_until(lambda: _read(stack, "results/fan.json.json"), timeout=30)
    assert listing["status"] == "QUEUED" and [j["image"] for j in listing["jobs"]] == keys
    for job in listing["jobs"]:
        meta = result_json(stack, job["metadata_key"])
        assert meta["status"] == "SUCCEEDED" and meta["job_id"] == job["job_id"]
        assert meta["result"]["key"] == job["result_key"]
    event = s3_notification(
        r.INPUT_BUCKET, "inbox/fan.json", version_id=put.get("VersionId"), etag=put["ETag"]
    )
    sqs.send_message(QueueUrl=stack.resources.queue_url, MessageBody=json.dumps(event))
    wait_until(lambda: _queue_empty(stack), timeout=20)
    assert stats(stack)["invocations"] == len(keys)


def _read(stack: LocalStack, key: str) -> dict[str, Any] | None:
    s3 = stack.client("s3")
    try:
        found: dict[str, Any] = json.loads(s3.get_object(Bucket=r.OUTPUT_BUCKET, Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None
    return found


def test_bad_requests_cost_no_model_call(stack: LocalStack) -> None:
    image = base64.b64encode(imagegen.png(64, 64)).decode()
    cases = [
        ({**SEED_BODY, "init_image": image, "samples": 2}, 400, "samples"),
        ({**SEED_BODY, "init_image": image, "steps": 51}, 400, "steps"),
        ({**SEED_BODY, "init_image": base64.b64encode(b"GIF89a....").decode()}, 415, "init_image"),
        ({**SEED_BODY, "init_image_s3_key": "../x.png"}, 400, "init_image_s3_key"),
    ]
    for body, status, field in cases:
        response = post(stack, "/v1/image-to-image", body)
        assert response.status_code == status, response.text
        assert field in [d["field"] for d in response.json()["error"]["details"]]
    assert stats(stack)["invocations"] == 0


def test_duplicate_s3_event_costs_one_model_call(stack: LocalStack) -> None:
    s3, sqs = stack.client("s3"), stack.client("sqs")
    put = s3.put_object(
        Bucket=r.INPUT_BUCKET, Key="inbox/twice.png", Body=imagegen.png(64, 64), Metadata={"prompt": "x"}
    )
    result_json(stack, "results/twice.png.json")
    # S3 delivers at least once: send the same notification again, as a late duplicate.
    event = s3_notification(
        r.INPUT_BUCKET, "inbox/twice.png", version_id=put.get("VersionId"), etag=put["ETag"]
    )
    sqs.send_message(QueueUrl=stack.resources.queue_url, MessageBody=json.dumps(event))
    wait_until(lambda: _queue_empty(stack), timeout=20)
    assert stats(stack)["invocations"] == 1


def _queue_empty(stack: LocalStack) -> bool:
    attrs = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.resources.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        attrs["ApproximateNumberOfMessages"] == "0" and attrs["ApproximateNumberOfMessagesNotVisible"] == "0"
    )


def test_throttled_model_recovers_through_retries(stack: LocalStack) -> None:
    faults(stack, throttle_first=2)
    body = {**SEED_BODY, "init_image": base64.b64encode(imagegen.png(64, 64)).decode()}
    response = post(stack, "/v1/jobs", body)
    job_id = response.json()["job_id"]

    def final() -> dict[str, Any] | None:
        view = requests.get(f"{stack.api_url}/v1/jobs/{job_id}", timeout=10).json()
        return view if view["status"] in ("SUCCEEDED", "FAILED") else None

    assert wait_until(final, timeout=40)["status"] == "SUCCEEDED"
    counted = stats(stack)
    assert counted["refused"] == 2 and counted["invocations"] == 1


def test_poison_message_reaches_the_dead_letter_queue(stack: LocalStack) -> None:
    faults(stack, fail_first=100)  # the model keeps answering 500
    s3, sqs = stack.client("s3"), stack.client("sqs")
    s3.put_object(
        Bucket=r.INPUT_BUCKET, Key="inbox/poison.png", Body=imagegen.png(64, 64), Metadata={"prompt": "x"}
    )

    def dead_letters() -> list[dict[str, Any]] | None:
        got = sqs.receive_message(QueueUrl=stack.resources.dlq_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        return got or None

    (message,) = wait_until(dead_letters, timeout=60)
    assert "poison.png" in message["Body"]  # the key as S3 encodes it in events
    meta = result_json(stack, "results/poison.png.json")
    assert meta["status"] == "FAILED" and meta["error"]["code"] == "model_busy"


def test_callers_see_only_their_own_over_http(stack: LocalStack) -> None:
    """Two callers as local mode's emulated authorizer names them (an x-api-key each; see
    local/api_front.py): the second gets 404 or 400 for everything of the first's, at no cost."""
    alice, bob = {"x-api-key": "alice-local-key"}, {"x-api-key": "bob-local-key"}
    ticket = post(stack, "/v1/uploads", {"content_type": "image/png"}, headers=alice).json()
    upload = requests.post(
        ticket["upload"]["url"],
        data=ticket["upload"]["fields"],
        files={"file": ("a.png", imagegen.png(64, 64), "image/png")},
        timeout=30,
    )
    assert upload.status_code in (200, 204), upload.text
    body = {**SEED_BODY, "init_image_s3_key": ticket["init_image_s3_key"]}
    keyed = {"Idempotency-Key": "same-key"}
    mine = post(stack, "/v1/image-to-image", body, headers={**alice, **keyed})
    assert mine.status_code == 200
    job_id = mine.json()["job_id"]
    assert requests.get(f"{stack.api_url}/v1/jobs/{job_id}", headers=alice, timeout=10).status_code == 200

    theirs = post(stack, "/v1/image-to-image", body, headers={**bob, **keyed})
    assert theirs.status_code == 400 and theirs.json()["error"]["details"][0]["field"] == "init_image_s3_key"
    for stranger in (bob, {}):  # another key, and the unsigned local user
        got = requests.get(f"{stack.api_url}/v1/jobs/{job_id}", headers=stranger, timeout=10)
        assert got.status_code == 404 and got.json()["error"]["code"] == "job_not_found"
    # Bob's own request under the same Idempotency-Key is his own job, neither a replay nor a 409.
    inline = {**SEED_BODY, "init_image": base64.b64encode(imagegen.png(64, 64)).decode()}
    his = post(stack, "/v1/image-to-image", inline, headers={**bob, **keyed})
    assert his.status_code == 200 and his.json()["job_id"] != job_id
    assert stats(stack)["invocations"] == 2


def test_a_rule_with_an_sqs_target_receives_one_event_per_job_from_each_door(stack: LocalStack) -> None:
    """Issue #23's 'done when': a user's rule on the bus the stack would use (the default bus),
    with an SQS target, receives each finished job's event once, in the envelope AWS documents
    (tests/fixtures/eventbridge/event-envelope.json), its detail meeting the published schema
    and pointing at a metadata JSON that exists."""
    from img2img.domain.job_events import job_finished_schema
    from tests.fixtures.eventbridge_docs import assert_envelope

    sqs, events, s3 = stack.client("sqs"), stack.client("events"), stack.client("s3")
    queue = sqs.create_queue(QueueName="my-job-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    pattern = {
        "source": ["img2img"],
        "detail-type": ["Image Job Finished"],
        "detail": {"environment": ["local"]},
    }
    events.put_rule(Name="my-job-events", EventBusName=r.EVENT_BUS, EventPattern=json.dumps(pattern))
    events.put_targets(
        Rule="my-job-events", EventBusName=r.EVENT_BUS, Targets=[{"Id": "q", "Arn": queue_arn}]
    )
    try:
        body = {**SEED_BODY, "init_image": base64.b64encode(imagegen.png(640, 480)).decode()}
        sync_id = post(stack, "/v1/image-to-image", body).json()["job_id"]
        queued_id = post(stack, "/v1/jobs", body).json()["job_id"]
        for key, metadata in (("inbox/evented.png", {"prompt": "a lighthouse"}), ("inbox/bare.png", {})):
            s3.put_object(Bucket=r.INPUT_BUCKET, Key=key, Body=imagegen.png(64, 64), Metadata=metadata)
        received: list[dict[str, Any]] = []

        def four() -> list[dict[str, Any]] | None:
            got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            received.extend(json.loads(m["Body"]) for m in got.get("Messages", []))
            return received if len(received) >= 4 else None

        wait_until(four, timeout=60)
        assert sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages") is None  # once each
        by_door: dict[str, list[str]] = {}
        for envelope in received:
            envelope.pop("ingestion-time", None)  # moto's own field; AWS documents none
            assert_envelope(envelope)
            detail = envelope["detail"]
            Draft202012Validator(job_finished_schema()).validate(detail)
            bucket, key = detail["metadata_s3_uri"].removeprefix("s3://").split("/", 1)
            assert (
                json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())["job_id"] == detail["job_id"]
            )
            by_door.setdefault(detail["door"], []).append(detail["status"])
            by_door[detail["door"]].sort()
            assert envelope["region"] == r.REGION and envelope["account"] == r.ACCOUNT_ID
        assert {d["job_id"] for d in (e["detail"] for e in received)} >= {sync_id, queued_id}
        # The API door's two jobs and one drop succeeded; the drop without a prompt failed, saying why.
        assert by_door == {"api": ["SUCCEEDED", "SUCCEEDED"], "s3": ["FAILED", "SUCCEEDED"]}
        [refused] = [e["detail"] for e in received if e["detail"]["status"] == "FAILED"]
        assert refused["error_code"] == "missing_parameters" and "model_id" not in refused
    finally:
        events.remove_targets(Rule="my-job-events", EventBusName=r.EVENT_BUS, Ids=["q"])
        events.delete_rule(Name="my-job-events", EventBusName=r.EVENT_BUS)
