"""A real headless Chromium (Debian's `chromium`), driven by Playwright for Python.

No browser is downloaded: Playwright launches the system's Chromium by path. Where there
is none these tests skip with the reason; `.ci/run` installs it and sets
CANCEL_OP_BROWSER_TESTS=required, so in CI a missing browser fails instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox_process import Sandbox, start_sandbox

# Chromium's own calls home are refused on a closed network, slowly: turn them off.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _chromium() -> tuple[str | None, str]:
    """The Chromium to launch, or None and why there is none."""
    named = os.environ.get("CHROMIUM")
    if named:
        if not os.access(named, os.X_OK):
            return None, f"CHROMIUM={named} is not an executable file: fix or unset it"
        return named, ""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return found, "no Chromium found: install Debian's chromium, or set CHROMIUM to its path"


# Module scope: Playwright's sync API keeps an event loop on this thread while it runs,
# so it must be gone before other modules' tests call asyncio.run.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    required = os.environ.get("CANCEL_OP_BROWSER_TESTS") == "required"
    executable, reason = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        executable, reason = None, "Playwright is not installed (pip install -e '.[dev]')"
    if executable is None:
        if required:
            pytest.fail(f"browser tests are required here, but {reason}")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    """A sandbox of the browser tests' own, so the screenshots show only what they did."""
    running = start_sandbox()
    yield running
    running.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context per test: nobody's choice of user carries over."""
    context = browser.new_context(viewport={"width": 1360, "height": 860})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert errors == [], f"the page raised: {errors}"


@pytest.fixture
def screenshot(tmp_path: Path) -> Any:
    """Screenshots for the README: refreshed in docs/screenshots with UPDATE_SCREENSHOTS=1."""

    def take(page: Any, name: str) -> Path:
        folder = SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        page.screenshot(path=str(path))
        assert path.stat().st_size > 10_000  # a page, not a blank
        return path

    return take
