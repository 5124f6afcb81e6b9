"""SnapStart's runtime hooks (handlers/wiring.py, registered only where Lambda's runtime ships
snapshot_restore_py): prime fills the snapshot with what the first request would build, reseed
keeps restored copies from drawing the same jitter."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from img2img.handlers import api, wiring, worker  # noqa: F401 - both handlers loaded, as prime looks for them

pytestmark = pytest.mark.handlers


@pytest.fixture
def fresh(aws_env: None) -> Iterator[None]:
    wiring.reset()
    yield
    wiring.reset()


def test_prime_builds_the_loaded_handlers_services_without_a_request(fresh: None) -> None:
    wiring.prime()  # no socket may open here (the level's autouse fixture): nothing is called
    assert wiring.get_service(sync=True) is wiring.get_service(sync=True)
    assert set(wiring._built) == {True, False}


def test_reseed_gives_each_restored_copy_its_own_jitter() -> None:
    random.seed(7)
    snapshot = random.getstate()
    first = random.random()
    random.setstate(snapshot)  # a second copy restored from the same snapshot
    wiring.reseed()
    assert random.random() != first
