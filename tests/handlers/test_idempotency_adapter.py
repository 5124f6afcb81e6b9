"""The idempotency adapter over Powertools and DynamoDB (moto): scopes never collide, and
records written before the adapter passed a key_prefix still answer (a retry across the
upgrade is replayed, not run and billed again)."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools.utilities.idempotency import idempotent_function

from img2img.adapters.idempotency import Idempotency
from img2img.domain.errors import IdempotencyConflict
from tests.handlers.world import TABLE, World

pytestmark = pytest.mark.handlers


def test_a_record_written_the_old_way_still_answers(world: World) -> None:
    store = Idempotency(world.dynamodb, TABLE)

    def run(record: dict[str, str]) -> dict[str, Any]:
        return {"job_id": "from-before"}

    # How the adapter keyed records before it passed key_prefix: its own function, renamed.
    run.__module__, run.__qualname__ = "img2img.adapters.idempotency", "img2img.api-sync.tag"
    old = idempotent_function(
        data_keyword_argument="record", persistence_store=store._layer, config=store.config
    )
    assert old(run)(record={"key": "k1", "fingerprint": "f"}) == {"job_id": "from-before"}

    def must_not_run() -> dict[str, Any]:
        raise AssertionError("a stored record must be answered, not run again")

    assert store.once("api-sync.tag", "k1", "f", must_not_run) == {"job_id": "from-before"}
    with pytest.raises(IdempotencyConflict):
        store.once("api-sync.tag", "k1", "another body", must_not_run)


def test_scopes_never_collide(world: World) -> None:
    store = Idempotency(world.dynamodb, TABLE)
    assert store.once("api-sync.a", "k", "f", lambda: {"n": 1}) == {"n": 1}
    assert store.once("api-sync.b", "k", "f", lambda: {"n": 2}) == {"n": 2}
    assert store.once("api-sync.a", "k", "f", lambda: {"n": 3}) == {"n": 1}
