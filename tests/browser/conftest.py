"""Real-browser fixtures: Debian's chromium driven by Playwright's sync API.

The browser is the system one (``make browsers`` installs it with apt);
Playwright never downloads a browser here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pytest

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator

    from playwright.sync_api import Browser, Page, Playwright

# Serve the live server on IPv4 loopback, the address ALLOWED_HOSTS names.
os.environ.setdefault("DJANGO_LIVE_TEST_SERVER_ADDRESS", "127.0.0.1")

CHROMIUM: Final = Path("/usr/bin/chromium")
CHROMIUM_ARGS: Final = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS: Final = Path(__file__).resolve().parents[2] / "test-artifacts"
TIMEOUT_MS: Final = 15_000


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Playwright's sync API, for one test module.

    While it runs, its asyncio loop counts as running on the test thread, so
    Django refuses ORM calls from test code and fixtures there
    (SynchronousOnlyOperation). Nothing else uses that loop, so the documented
    switch is safe; it is on only while the loop lives (the module), so that
    the rest of the suite keeps Django's check:
    https://docs.djangoproject.com/en/5.2/topics/async/#envvar-DJANGO_ALLOW_ASYNC_UNSAFE
    """
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as env, sync_playwright() as playwright:
        env.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield playwright


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """One headless chromium per test module."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"No chromium at {CHROMIUM}: the browser tests need Debian's chromium. "
            "Run `make browsers` (apt-get install chromium chromium-driver) as root.",
            pytrace=False,
        )
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies) and page per test."""
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Save a full-page screenshot of a failed browser test to test-artifacts/."""
    report = yield
    page: Page | None = getattr(item, "funcargs", {}).get("page")
    if report.when == "call" and report.failed and page is not None and not page.is_closed():
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', item.name)}.png"
        try:
            page.screenshot(path=str(path), full_page=True)
        except Exception as exc:  # A crashed page must not hide the test's own failure.
            report.sections.append(("screenshot", f"Could not save a screenshot: {exc}"))
        else:
            report.sections.append(("screenshot", f"Saved {path} (URL {page.url})"))
    return report
