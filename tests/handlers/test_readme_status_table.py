"""README's status table, the error taxonomy and the served spec agree: every (status, code) the
service can answer is a row of README's table, every row is one the service sends, and every
status a route documents in /v1/openapi.json is in the table."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from img2img.domain import errors
from img2img.handlers import api
from tests.handlers.api_events import FakeContext, api_event
from tests.handlers.world import World

pytestmark = pytest.mark.handlers

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
# The codes the handler answers itself, outside the domain's taxonomy (handlers/api.py).
HANDLER_CODES = {
    (415, "unsupported_media_type"),
    (404, "not_found"),
    (405, "method_not_allowed"),
    (500, "internal_error"),
}
S3_DOOR_ONLY = {"missing_parameters"}  # metadata JSON only: the API never answers it


def readme_rows() -> set[tuple[int, str]]:
    table = README.split("### Status codes", 1)[1].split("\n\n", 2)[1]
    rows = set()
    for status, codes in re.findall(r"^\| (\d{3}) \| (.+?) \|", table, re.M):
        rows |= {(int(status), code) for code in re.findall(r"`([a-z_]+)`", codes)}
    return rows


def taxonomy() -> set[tuple[int, str]]:
    def every(cls: type[errors.ServiceError]) -> list[type[errors.ServiceError]]:
        return [cls, *(c for sub in cls.__subclasses__() for c in every(sub))]

    found = {(c.status, c.code) for c in every(errors.ServiceError) if c.code not in S3_DOOR_ONLY}
    return found | HANDLER_CODES


def test_readme_lists_exactly_the_codes_the_service_answers() -> None:
    assert readme_rows() == taxonomy()


def test_every_status_the_spec_documents_is_in_readmes_table(world: World) -> None:
    response = api.handler(api_event("GET", "/v1/openapi.json"), FakeContext())
    spec = json.loads(response["body"])
    documented = {
        int(status)
        for path in spec["paths"].values()
        for operation in path.values()
        for status in operation.get("responses", {})
        if int(status) >= 400
    }
    assert documented and documented <= {status for status, _ in readme_rows()}
