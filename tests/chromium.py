"""Open a page in headless Chromium and ask it what a reader would see (test helper).

Chromium is driven through the DevTools protocol over a pipe (``--remote-debugging-pipe``:
JSON messages separated by NUL bytes, commands on the child's fd 3, answers on its fd 4), so no
port is opened and nothing beyond the standard library is needed. Unlike grepping the browser's
log, the protocol says which console messages are errors and reports uncaught exceptions.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class Page:
    errors: list[str] = field(default_factory=list)  # uncaught exceptions, console/log errors
    values: dict[str, Any] = field(default_factory=dict)  # what the probe expressions returned


class _Pipe:
    def __init__(self, binary: str, profile: str) -> None:
        cmd_r, self._cmd_w = os.pipe()
        self._res_r, res_w = os.pipe()

        def child_fds() -> None:  # runs in the child before exec: the protocol's fds 3 and 4
            os.dup2(cmd_r, 3)
            os.dup2(res_w, 4)

        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4),
            preexec_fn=child_fds,  # the tests start no threads that could hold a lock
        )
        os.close(cmd_r)
        os.close(res_w)
        self._buf = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read(self, timeout: float) -> dict[str, Any] | None:
        end = time.monotonic() + timeout
        while b"\0" not in self._buf:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self._res_r], [], [], left)[0]:
                return None
            chunk = os.read(self._res_r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe (did it crash?)")
            self._buf += chunk
        msg, _, self._buf = self._buf.partition(b"\0")
        return json.loads(msg)

    def send(
        self, method: str, params: dict | None = None, session: str | None = None, timeout=30.0
    ) -> dict[str, Any]:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        end = time.monotonic() + timeout
        while True:
            reply = self._read(max(0.0, end - time.monotonic()))
            if reply is None:
                raise TimeoutError(f"chromium did not answer {method} in {timeout} s")
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            msg = self._read(max(0.0, end - time.monotonic()))
            if msg is None:
                return False
            self.events.append(msg)
        return True

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.send("Browser.close", timeout=5)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._cmd_w)
        os.close(self._res_r)


def _errors(events: list[dict[str, Any]]) -> list[str]:
    found = []
    for e in events:
        method, p = e.get("method"), e.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            found.append(f"uncaught: {d.get('exception', {}).get('description') or d.get('text')}")
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            texts = [str(a.get("value", a.get("description", ""))) for a in p.get("args", [])]
            found.append(f"console.{p['type']}: {' '.join(texts)}")
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            entry = p["entry"]
            found.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}")
    return found


def open_page(
    binary: str,
    page: Path,
    probes: dict[str, str],
    ready: str,
    screenshot: Path | None = None,
    timeout: float = 60.0,
) -> Page:
    """Load ``page``; wait until the JS expression ``ready`` is true; evaluate each probe (a JS
    expression, may be a promise; its value comes back as JSON); save a full-page screenshot."""
    with tempfile.TemporaryDirectory(prefix="mnistbench-chromium-") as profile:
        pipe = _Pipe(binary, profile)
        try:
            target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
                "sessionId"
            ]
            for method in ("Runtime.enable", "Log.enable", "Page.enable"):
                pipe.send(method, session=session)
            pipe.send(
                "Emulation.setDeviceMetricsOverride",
                {"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": False},
                session=session,
            )
            pipe.events.clear()  # from here on, only the page's own events count
            pipe.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
            if not pipe.wait_event("Page.loadEventFired", timeout):
                raise TimeoutError(f"{page} did not finish loading in {timeout} s")

            def evaluate(expr: str) -> Any:
                res = pipe.send(
                    "Runtime.evaluate",
                    {"expression": expr, "awaitPromise": True, "returnByValue": True},
                    session=session,
                )
                if "exceptionDetails" in res:
                    raise RuntimeError(f"{expr[:80]}...: {res['exceptionDetails']}")
                return res["result"].get("value")

            end = time.monotonic() + timeout
            while not evaluate(f"Boolean({ready})"):
                if time.monotonic() > end:
                    raise TimeoutError(f"{page}: {ready!r} still false after {timeout} s")
                time.sleep(0.2)
            result = Page(values={name: evaluate(expr) for name, expr in probes.items()})
            if screenshot is not None:
                shot = pipe.send(
                    "Page.captureScreenshot",
                    {"format": "png", "captureBeyondViewport": True},
                    session=session,
                )
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                screenshot.write_bytes(base64.b64decode(shot["data"]))
            result.errors = _errors(pipe.events)
            return result
        finally:
            pipe.close()
