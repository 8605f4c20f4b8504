"""Headless Chromium for the portal's end-to-end tests: Debian's chromium, driven by Playwright.

Playwright never downloads a browser here: it launches the system's chromium (installed by
scripts/install_chromium.sh, which `make install` runs) through executable_path. Each page is
watched for console errors, uncaught exceptions and any request that leaves the node's origin;
those requests are blocked (the network cut off) and recorded, so a test can assert there were none.

(No tests here; the file serves tests/test_portal_browser.py and tests/test_dashboard.py.)
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser")
LOCAL_SCHEMES = ("data:", "blob:", "about:")
MAX_TABS_TO_SEARCH = 10


def chromium_path() -> str:
    """Debian's chromium; outside CI a test is skipped without it, in CI it fails (the install must provide it)."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    message = "chromium is not installed: run `bash scripts/install_chromium.sh` (make install does)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Watch:
    """What a page did that a test forbids: console errors, page errors, requests off the origin."""

    console_errors: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)

    def clean(self) -> bool:
        return not self.console_errors and not self.outside_requests


@contextmanager
def chromium() -> Iterator:
    """A headless Chromium (Playwright Browser) for the duration of the block."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, origin: str, width: int = 1280, height: int = 800):
    """A new page in its own context; everything not on `origin` is blocked and recorded. (page, Watch)."""
    context = browser.new_context(viewport={"width": width, "height": height}, service_workers="block")
    watch = Watch()

    def route(request_route) -> None:
        url = request_route.request.url
        if url.startswith(origin + "/") or url == origin or url.startswith(LOCAL_SCHEMES):
            request_route.continue_()
        else:
            watch.outside_requests.append(url)
            request_route.abort("blockedbyclient")

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda message: message.type == "error" and watch.console_errors.append(message.text))
    page.on("pageerror", lambda error: watch.console_errors.append(f"uncaught: {error}"))
    return page, watch


def search_by_keyboard(page, text: str) -> None:
    """Tab from the page's start to the search box, type, press Enter."""
    page.locator("body").focus()
    for _ in range(MAX_TABS_TO_SEARCH):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "q":
            break
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type(text)
    with page.expect_navigation():
        page.keyboard.press("Enter")
