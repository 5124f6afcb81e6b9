"""The page to try the service (GET /): web/index.html with web/app.css and web/app.js inlined
into one document, read once per process. One document means one route, so it works wherever
GET / is routed, and a Content-Security-Policy that names the exact script and style by hash:
nothing else runs on the page, and it talks only to its own API (and reads the presigned
result URLs it is given)."""

from __future__ import annotations

import base64
import hashlib
import html
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import get_args

from aws_lambda_powertools.event_handler import Response

from img2img.domain.request import StylePreset

WEB_DIR = Path(__file__).with_name("web")
STYLESHEET_TAG = '<link rel="stylesheet" href="app.css">'
SCRIPT_TAG = '<script src="app.js"></script>'
STYLE_OPTIONS_MARK = "<!-- style-options -->"


class PageError(RuntimeError):
    """web/ is missing a file or a placeholder: the page cannot be assembled."""


@dataclass(frozen=True)
class Page:
    body: str
    etag: str
    content_security_policy: str


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def _read(name: str) -> str:
    try:
        return (WEB_DIR / name).read_text(encoding="utf-8")
    except OSError as exc:
        raise PageError(f"the page's {name} is missing from {WEB_DIR}: {exc}") from exc


def _replace_once(document: str, mark: str, replacement: str) -> str:
    if document.count(mark) != 1:
        raise PageError(f"index.html must contain {mark!r} exactly once")
    return document.replace(mark, replacement)


@lru_cache(maxsize=1)
def page() -> Page:
    """The assembled page. The style presets come from the request contract itself."""
    css, js = _read("app.css"), _read("app.js")
    if "</script" in js.lower() or "</style" in css.lower():
        raise PageError("app.js / app.css must not contain closing script or style tags")
    options = "\n".join(
        f'          <option value="{html.escape(p)}">{html.escape(p)}</option>' for p in get_args(StylePreset)
    )
    document = _read("index.html")
    document = _replace_once(document, STYLE_OPTIONS_MARK, options)
    document = _replace_once(document, STYLESHEET_TAG, f"<style>{css}</style>")
    document = _replace_once(document, SCRIPT_TAG, f"<script>{js}</script>")
    policy = "; ".join(
        (
            "default-src 'none'",
            f"script-src '{_sha256(js)}'",
            f"style-src '{_sha256(css)}'",
            # the result and metadata come from presigned S3 URLs; the source preview is a blob:
            "img-src 'self' data: blob: http: https:",
            "connect-src 'self' http: https:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )
    etag = '"' + hashlib.sha256(document.encode()).hexdigest()[:32] + '"'
    return Page(body=document, etag=etag, content_security_policy=policy)


def page_response(if_none_match: str | None) -> Response[str]:
    """200 with the page, or 304 when the browser already has this version."""
    current = page()
    headers = {
        "ETag": current.etag,
        "Cache-Control": "no-cache",
        "Content-Security-Policy": current.content_security_policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    if if_none_match and current.etag in {tag.strip() for tag in if_none_match.split(",")}:
        return Response(status_code=304, content_type="text/html; charset=utf-8", body="", headers=headers)
    return Response(
        status_code=200, content_type="text/html; charset=utf-8", body=current.body, headers=headers
    )
