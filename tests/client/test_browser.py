"""The page in a real browser: Debian's headless Chromium (never a downloaded one) driven by
Selenium through /usr/bin/chromedriver, against local mode. Upload an image, fill the form,
submit, wait for the result; both images must render, the metadata must show, the job must be
in the recent list; a screenshot goes to tests/artifacts/.

Without /usr/bin/chromium the test skips on a developer's machine (run `make browser`) and
fails under CI (CI set), where `make browser` runs before the tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from img2img_local import resources as r
from img2img_local.runner import LocalStack
from tools.sample import sample_png

pytestmark = [pytest.mark.local, pytest.mark.timeout(240)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
FINAL = ("SUCCEEDED", "CONTENT_FILTERED", "FAILED")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)


def _need_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if not missing:
        return
    message = f"{' and '.join(missing)} missing: run `make browser` (Debian's chromium and chromium-driver)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    yield from chromium(tmp_path, monkeypatch)


def chromium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Debian's Chromium under Selenium, offline, with its own profile: the page's tests here
    and the sign-in test in tests/local/test_cognito_local.py."""
    _need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never fetch anything
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _image_rendered(driver: Any, element_id: str) -> bool:
    return bool(
        driver.execute_script(
            "const img = document.getElementById(arguments[0]);"
            "return !img.hidden && img.complete && img.naturalWidth > 0 && img.naturalHeight > 0;",
            element_id,
        )
    )


def _metadata(driver: Any) -> dict[str, str]:
    rows: dict[str, str] = driver.execute_script(
        "const out = {}; let term = null;"
        "for (const el of document.querySelectorAll('#metadata > *')) {"
        "  if (el.tagName === 'DT') term = el.textContent; else out[term] = el.textContent; }"
        "return out;"
    )
    return rows


def test_the_page_runs_one_image_end_to_end(client_stack: LocalStack, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    source = tmp_path / "landscape.png"
    source.write_bytes(sample_png((768, 512)))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    wait = WebDriverWait(browser, 60)
    try:
        browser.get(client_stack.api_url + "/")
        wait.until(ec.text_to_be_present_in_element((By.ID, "service-info"), "environment local"))
        wait.until(lambda d: len(Select(d.find_element(By.ID, "model")).options) > 1)

        browser.find_element(By.ID, "image-input").send_keys(str(source))
        wait.until(lambda d: _image_rendered(d, "source-image"))
        browser.find_element(By.ID, "prompt").send_keys("a watercolor landscape at dusk")
        browser.find_element(By.ID, "negative-prompt").send_keys("blurry")
        Select(browser.find_element(By.ID, "style")).select_by_value("analog-film")
        browser.execute_script(
            "const s = document.getElementById('strength'); s.value = '0.6';"
            "s.dispatchEvent(new Event('input', {bubbles: true}));"
        )
        assert browser.find_element(By.ID, "strength-value").text == "0.60"
        browser.find_element(By.ID, "seed").send_keys("4242")
        browser.find_element(By.ID, "submit").click()

        wait.until(lambda d: d.find_element(By.ID, "result-view").get_attribute("data-status") in FINAL)
        status = browser.find_element(By.ID, "status").text
        assert browser.find_element(By.ID, "result-view").get_attribute("data-status") == "SUCCEEDED", status
        wait.until(lambda d: _image_rendered(d, "result-image"))
        assert _image_rendered(browser, "source-image")
        wait.until(lambda d: "Timings" in _metadata(d))  # the metadata JSON was read too
        metadata = _metadata(browser)
        assert metadata["Status"] == "SUCCEEDED" and metadata["Seed"] == "4242"
        assert metadata["Model"] == f"{r.DEFAULT_MODEL_ID} (sd3)"
        assert "model" in metadata["Timings"] and "total" in metadata["Timings"]
        assert "Emulated" in metadata
        job_id = metadata["Job"]
        browser.save_screenshot(str(ARTIFACTS / "page.png"))

        # The job is in the recent list, and clicking it brings it back.
        recent = browser.find_elements(By.CSS_SELECTOR, "#recent-jobs button")
        assert [b.get_attribute("data-job-id") for b in recent] == [job_id]
        browser.execute_script(
            "document.getElementById('result-view').dataset.status = '';"
            "document.getElementById('result-image').hidden = true;"
        )
        recent[0].click()
        wait.until(lambda d: d.find_element(By.ID, "result-view").get_attribute("data-status") == "SUCCEEDED")
        wait.until(lambda d: _image_rendered(d, "result-image") and _image_rendered(d, "source-image"))

        # The page kept to its Content-Security-Policy: nothing was blocked or thrown.
        problems = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert problems == []
    except Exception:
        browser.save_screenshot(str(ARTIFACTS / "page-failure.png"))
        raise


def test_the_page_says_why_a_request_is_refused(
    client_stack: LocalStack, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    source = tmp_path / "small.png"
    source.write_bytes(sample_png((256, 256)))
    browser.get(client_stack.api_url + "/")
    wait = WebDriverWait(browser, 60)
    browser.find_element(By.ID, "submit").click()
    assert "Choose a source image" in browser.find_element(By.ID, "status").text
    browser.find_element(By.ID, "image-input").send_keys(str(source))
    browser.find_element(By.ID, "prompt").send_keys("x")
    # A seed the service refuses: its field error comes back to the page.
    browser.execute_script("document.getElementById('seed').value = '4294967296';")
    browser.find_element(By.ID, "submit").click()
    assert "whole number" in browser.find_element(By.ID, "status").text
    browser.execute_script(
        "document.getElementById('seed').value = '';"
        "const s = document.getElementById('style'); const o = document.createElement('option');"
        "o.value = 'not-a-style'; s.append(o); s.value = 'not-a-style';"
    )
    browser.find_element(By.ID, "submit").click()
    wait.until(lambda d: d.find_element(By.ID, "status").get_attribute("data-kind") == "error")
    text = browser.find_element(By.ID, "status").text
    assert "400 invalid_request" in text and "style_preset" in text
