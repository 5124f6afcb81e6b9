"""GET / through the api handler: one self-contained page (no CDN, no build step), a strict
Content-Security-Policy naming its script and style by hash, and conditional GETs."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any, get_args

import pytest

from img2img.domain.request import StylePreset
from img2img.handlers import api, page
from tests.handlers.api_events import FakeContext, api_event
from tests.handlers.world import aws, aws_env, world  # noqa: F401 - the api handler's fixtures

pytestmark = pytest.mark.unit
with_service = pytest.mark.usefixtures("world")


def get_root(headers: dict[str, str] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = api.handler(api_event("GET", "/", headers=headers), FakeContext())
    response["headers"] = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    for name, values in (response.get("multiValueHeaders") or {}).items():
        response["headers"][name.lower()] = values[0]
    return response


def digest(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


@with_service
def test_the_page_is_one_self_contained_document() -> None:
    response = get_root()
    assert response["statusCode"] == 200
    assert response["headers"]["content-type"].startswith("text/html")
    body: str = response["body"]
    assert body.startswith("<!doctype html>")
    # Nothing is loaded from anywhere: the stylesheet and script are inlined.
    assert 'rel="stylesheet"' not in body and not re.search(r"<script[^>]*\ssrc=", body)
    assert not re.search(r"https?://", body)
    for element_id in ("image-input", "prompt", "negative-prompt", "style", "strength", "seed", "submit",
                       "source-image", "result-image", "metadata", "recent-jobs"):  # fmt: skip
        assert f'id="{element_id}"' in body
    # The style presets are the request contract's own.
    assert re.findall(r'<option value="([^"]+)">', body)[: len(get_args(StylePreset))] == list(
        get_args(StylePreset)
    )


@with_service
def test_the_content_security_policy_allows_only_the_inlined_script_and_style() -> None:
    response = get_root()
    policy = response["headers"]["content-security-policy"]
    script = re.search(r"<script>(.*)</script>", response["body"], re.S)
    style = re.search(r"<style>(.*)</style>", response["body"], re.S)
    assert script and style
    assert f"script-src '{digest(script.group(1))}'" in policy
    assert f"style-src '{digest(style.group(1))}'" in policy
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert response["headers"]["x-content-type-options"] == "nosniff"


@with_service
def test_a_browser_that_has_the_page_gets_304() -> None:
    etag = get_root()["headers"]["etag"]
    again = get_root({"If-None-Match": etag})
    assert again["statusCode"] == 304 and not again["body"]
    assert get_root({"If-None-Match": '"something-else"'})["statusCode"] == 200


@with_service
def test_the_page_is_not_in_the_api_schema() -> None:
    response = api.handler(api_event("GET", "/v1/openapi.json"), FakeContext())
    assert "/" not in json.loads(response["body"])["paths"]


def test_a_broken_web_folder_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("index.html", "app.css", "app.js"):
        (tmp_path / name).write_text((page.WEB_DIR / name).read_text())
    monkeypatch.setattr(page, "WEB_DIR", tmp_path)
    page.page.cache_clear()
    try:
        (tmp_path / "index.html").write_text("<html>no placeholders</html>")
        with pytest.raises(page.PageError, match="exactly once"):
            page.page()
        (tmp_path / "app.js").unlink()
        with pytest.raises(page.PageError, match=r"app\.js"):
            page.page()
        (tmp_path / "app.js").write_text("alert('</script>')")
        with pytest.raises(page.PageError, match="closing script"):
            page.page()
    finally:
        page.page.cache_clear()
