"""Browser tests of the example project: headless Chromium driven by Playwright.

They run against the example project, not the test settings, through the nox session::

    python3 dev.py nox -s browser      # pytest tests/browser --ds=example.project.settings

Chromium is Debian's (`apt-get install chromium`, `/usr/bin/chromium`), never a browser
downloaded by `playwright install`. In the main test run (`python3 dev.py test`), or where
Chromium or Playwright is missing, the tests are skipped with the reason; the nox session sets
`REVY_REQUIRE_BROWSER=1`, which turns a missing browser into an error instead.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM = os.environ.get("REVY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EXAMPLE_URLCONF = "example.project.urls"


def _missing_browser() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed (pip install playwright)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    return None


def _skip_reason() -> str | None:
    from django.conf import settings

    if settings.ROOT_URLCONF != EXAMPLE_URLCONF:
        return (
            "browser tests run against the example project: python3 dev.py nox -s browser "
            "(pytest tests/browser --ds=example.project.settings)"
        )
    missing = _missing_browser()
    if missing and os.environ.get("REVY_REQUIRE_BROWSER") == "1":
        raise pytest.UsageError(f"REVY_REQUIRE_BROWSER=1, but {missing}.")
    return missing


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    browser_items = [item for item in items if item.get_closest_marker("browser")]
    if not browser_items:
        return
    reason = _skip_reason()
    if reason:
        for item in browser_items:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the whole run."""
    from playwright.sync_api import sync_playwright

    # Playwright's synchronous API runs an event loop in this thread, which Django takes
    # for an async context and refuses ORM calls in; the tests' own ORM calls are ordinary
    # synchronous code, so say so for as long as the browser runs.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


class Console:
    """What a page reported: console errors, failed requests and HTTP errors."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        self.failed: list[str] = []
        self.http_errors: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        page.on("requestfailed", lambda request: self.failed.append(request.url))
        page.on("response", self._on_response)

    def _on_console(self, message: Any) -> None:
        if message.type == "error" and not _is_favicon(message.location.get("url", "")):
            self.errors.append(f"{message.text} ({message.location.get('url')})")

    def _on_response(self, response: Any) -> None:
        if response.status >= 400 and not _is_favicon(response.url):
            self.http_errors.append(f"{response.status} {response.url}")


def _is_favicon(url: str) -> bool:
    # Chromium asks every site for /favicon.ico on its own; the demo has none (a 404).
    return urlsplit(url).path == "/favicon.ico"


@pytest.fixture
def page(browser: Any, live_server: Any) -> Iterator[Any]:
    """A fresh browser tab (own cookies) whose relative URLs go to the live server."""
    context = browser.new_context(base_url=live_server.url)
    yield context.new_page()
    context.close()


@pytest.fixture
def console(page: Any) -> Console:
    """Collects the page's console errors and failed requests from now on."""
    return Console(page)


@pytest.fixture
def demo(transactional_db: None) -> dict[str, Any]:
    """The example project's demo data and history (`manage.py seed_demo`)."""
    from django.core.management import call_command

    from example.garage.models import Car

    call_command("seed_demo", verbosity=0)
    return {"volvo": Car.objects.get(manufacturer="Volvo")}


def log_in(page: Any, username: str = "admin", password: str = "admin") -> None:
    """Log in through the admin's login form."""
    page.goto("/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")


@pytest.fixture
def screenshots(tmp_path: Any) -> Any:
    """Save a page's screenshot and check it; returns the saving function.

    Saved under `REVY_SCREENSHOT_DIR` when set (the nox session keeps them for review), else
    in the test's temporary directory. Each is checked to be a PNG of the whole viewport that
    shows a page (not one flat colour), and that the page fits the viewport's width: nothing,
    diffs included, makes it scroll sideways.
    """
    from pathlib import Path

    directory = Path(os.environ.get("REVY_SCREENSHOT_DIR") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)

    def save(page: Any, name: str) -> Path:
        from io import BytesIO

        from PIL import Image

        path = directory / f"{name}.png"
        data = page.screenshot(path=str(path))
        image = Image.open(BytesIO(data))
        viewport = page.viewport_size
        assert image.format == "PNG"
        assert image.size == (viewport["width"], viewport["height"]), image.size
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) > 16, f"{path} looks blank"
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path}: the page is {overflow}px wider than the viewport"
        return path

    return save
