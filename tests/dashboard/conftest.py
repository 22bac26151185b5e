"""Fixtures for the dashboard tests: one headless Chromium per module, and pages that fail
the test when the dashboard logs an error or a request fails (a CDN fetch, say).

Panel renders inside nested shadow DOM; Playwright's CSS locators pierce open shadow roots,
so ``page.locator(".fnb-table-dead .tabulator-row")`` works across them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.dashboard.support import CHROMIUM, CHROMIUM_ARGS, Page

# -- browser ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per module.

    Not per session: sync Playwright keeps an event loop running in this thread while it
    is started, which breaks every async test that runs after it until it stops.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Page]:
    """A fresh browser context; the test fails if the page logs an error or a request fails."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    errors: list[str] = []
    pg.on("console", lambda m: m.type == "error" and errors.append(f"console: {m.text}"))
    pg.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    pg.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    yield Page(pg, errors)
    context.close()
    assert errors == [], "the page reported errors"
