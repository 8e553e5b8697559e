"""Open a page in the system's Chromium with Playwright and ask what a reader would see (test
helper).

Playwright drives Debian's ``chromium`` (``executable_path``: no browser download). The network
is closed to the page, so a page that needs one (a script from a CDN) fails here as it would
offline; console errors, uncaught exceptions and failed requests are collected.
"""

from __future__ import annotations

import html
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.requires import import_or_missing, missing

# Where the browser tests keep their screenshots: the test's temporary directory, unless this
# names a directory (docs/img/make-screenshots.sh: tests/artifacts/).
SCREENSHOTS = "MNISTBENCH_SCREENSHOTS"


def screenshot_path(name: str, tmp_path: Path) -> Path:
    kept = os.environ.get(SCREENSHOTS)
    return (Path(kept).resolve() if kept else tmp_path) / name


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def chromium_or_skip() -> str:
    """The browser; without Chromium or Playwright nothing can be opened: the test is skipped,
    and fails in CI (``tests/requires.py``)."""
    binary = find_chromium()
    if binary is None:
        missing("chromium not installed (Debian: apt-get install chromium; .ci/run does it)")
    import_or_missing("playwright.sync_api", "playwright missing (envs/requirements.lock)")
    return binary


@dataclass
class Page:
    errors: list[str] = field(default_factory=list)  # uncaught exceptions, console errors
    values: dict[str, Any] = field(default_factory=dict)  # what the probe expressions returned


def open_page(
    binary: str,
    page: Path,
    probes: dict[str, str],
    ready: str,
    screenshot: Path | None = None,
    viewport: tuple[int, int] = (1400, 1000),
    timeout: float = 60.0,
    full_page: bool = False,
) -> Page:
    """Load ``page`` in a ``viewport``-sized window; wait until the JS expression ``ready`` is
    true; evaluate each probe (a JS expression, may be a promise; its value comes back as
    JSON); save a screenshot of the window (what a reader sees first), or of the whole page."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    found: list[str] = []
    with sync_playwright() as pw:
        flags = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        browser = pw.chromium.launch(executable_path=binary, args=flags)
        try:
            context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
            context.route("http*://**", lambda route: route.abort())  # offline
            tab = context.new_page()
            tab.on("pageerror", lambda exc: found.append(f"uncaught: {exc}"))
            tab.on("requestfailed", lambda req: found.append(f"request failed: {req.url}"))
            tab.on(
                "console",
                lambda msg: (
                    found.append(f"console.{msg.type}: {msg.text}")
                    if msg.type in ("error", "assert")
                    else None
                ),
            )
            tab.goto(page.resolve().as_uri(), wait_until="load", timeout=timeout * 1000)
            try:
                tab.wait_for_function(ready, timeout=timeout * 1000)
            except PlaywrightTimeout as exc:  # say what the page said, not only that it hung
                raise AssertionError(f"{page} never got ready ({ready}); errors: {found}") from exc
            values = {name: tab.evaluate(expr) for name, expr in probes.items()}
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                tab.screenshot(path=str(screenshot), full_page=full_page)
        finally:
            browser.close()
    return Page(errors=found, values=values)


def terminal_page(text: str, page: Path, columns: int = 110) -> tuple[int, int]:
    """Write ``text`` as a terminal ``columns`` wide would show it (light on dark, monospace,
    long lines wrapped) to the HTML file ``page``; returns the window size for it (a
    ``full_page`` screenshot takes the whole height)."""
    page.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><style>"
        "body { margin: 0; background: #1e1e1e; }"
        f"pre {{ margin: 0; padding: 10px 12px; color: #d4d4d4; width: {columns + 1}ch;"
        " white-space: pre-wrap; font: 13px/17px 'DejaVu Sans Mono', monospace; }"
        "</style></head><body><pre>" + html.escape(text) + "</pre></body></html>"
    )
    return 32 + 8 * columns, 200
