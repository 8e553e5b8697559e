"""The Playwright helper itself: it sees the errors a page hides, and reads the page back."""

from __future__ import annotations

from pathlib import Path

from tests.browser import chromium_or_skip, open_page


def test_console_errors_uncaught_exceptions_and_the_network_are_reported(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text(
        "<html><body><table><tr><th>a</th></tr></table>"
        '<script src="https://cdn.invalid/vega.js"></script><script>'
        "console.warn('only a warning'); console.error('bad thing');"
        "setTimeout(() => { window.done = true; undefinedFunction(); }, 10);"
        "</script></body></html>"
    )
    shot = tmp_path / "shot.png"
    result = open_page(
        chromium_or_skip(), page, {"headers": "document.querySelectorAll('th').length"},
        "window.done", shot,
    )  # fmt: skip
    assert result.values == {"headers": 1}
    assert any("console.error: bad thing" in e for e in result.errors), result.errors
    assert any("uncaught" in e and "undefinedFunction" in e for e in result.errors), result.errors
    assert any("cdn.invalid" in e for e in result.errors), result.errors  # offline: no CDN
    assert not any("only a warning" in e for e in result.errors)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_clean_page_has_no_errors(tmp_path: Path) -> None:
    page = tmp_path / "ok.html"
    page.write_text("<html><body><p id='x'>fine</p></body></html>")
    result = open_page(
        chromium_or_skip(), page, {"text": "document.getElementById('x').innerText"}, "true"
    )
    assert result.errors == [] and result.values == {"text": "fine"}
