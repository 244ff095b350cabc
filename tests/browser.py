"""A headless Chromium for tests, driven over the DevTools protocol with the standard library.

Chromium runs with `--remote-debugging-pipe`: commands go in as NUL-terminated JSON on fd 3 and
replies and events come back on fd 4, so no websocket client and no extra package is needed.
`Page` opens one file, records console errors, uncaught exceptions and every network request,
evaluates JavaScript, clicks at an element's centre with real mouse events and takes
screenshots. `chromium_or_skip()` finds the binary; outside CI a missing Chromium skips the
test, in CI (`CI` set) it fails. Also a script: `python tests/browser.py docs/demo-report.png`
renders the demo report and screenshots it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
)


def chromium_or_skip() -> str:
    """The Chromium binary; skip when absent outside CI, fail when absent in CI."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    reason = "headless Chromium is not installed (Debian: apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; .ci/run installs it in CI", pytrace=False)
    pytest.skip(reason)


class Browser:
    """One headless Chromium process with a fresh profile, spoken to over the pipe."""

    def __init__(self, binary: str, *, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="bk-chromium-")
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        # move the child's ends above the range dup2 writes to, so 3 and 4 never collide
        child_in = os.dup(to_child_r) if to_child_r > 4 else _dup_high(to_child_r)
        child_out = os.dup(from_child_w) if from_child_w > 4 else _dup_high(from_child_w)
        os.close(to_child_r)
        os.close(from_child_w)

        def wire() -> None:  # runs in the child between fork and exec
            os.dup2(child_in, 3, inheritable=True)
            os.dup2(child_out, 4, inheritable=True)

        self.process = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-pipe"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # close_fds would close 3 and 4 after `wire`; PEP 446 keeps other fds private
            close_fds=False,
            preexec_fn=wire,
        )
        os.close(child_in)
        os.close(child_out)
        self._out = os.fdopen(to_child_w, "wb", buffering=0)
        self._in = os.fdopen(from_child_r, "rb", buffering=0)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str = "") -> Any:
        """Send one command and wait for its reply; events read meanwhile are kept."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._out.write(json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method} failed: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, session: str = "") -> dict[str, Any]:
        """The first event `method` (of `session`) not consumed yet, waiting for it."""
        deadline = time.monotonic() + self.timeout
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == method and event.get("sessionId", "") == session:
                    return self.events.pop(i)
            self.events.append(self._read(deadline))

    def _read(self, deadline: float) -> dict[str, Any]:
        import select

        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = self._in.read(1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe (did it crash?)")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError, TimeoutError):
            self.send("Browser.close")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._out.close()
        self._in.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _dup_high(fd: int) -> int:
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_DUPFD, 10)


class Page:
    """One tab that has loaded `url`, with what it logged and requested."""

    def __init__(self, browser: Browser, url: str, *, width: int = 1280, height: int = 900) -> None:
        self.browser = browser
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session: str = browser.send(
            "Target.attachToTarget", {"targetId": target, "flatten": True}
        )["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.command(f"{domain}.enable")
        self.command(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        self.command("Page.navigate", {"url": url})
        browser.wait_event("Page.loadEventFired", self.session)

    def command(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return self.browser.send(method, params, self.session)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited); page errors raise."""
        reply = self.command(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in reply:
            raise RuntimeError(f"page error: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        """Poll a JavaScript expression until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"never true in the page: {expression}")
            time.sleep(0.05)

    def click(self, selector: str) -> None:
        """A real left click (press + release) at the centre of the element."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2]; })()"
        )
        x, y = box
        for kind in ("mousePressed", "mouseReleased"):
            self.command(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1},
            )

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries seen so far."""
        self.evaluate("0")  # flush events queued before now
        found = []
        for event in self.browser.events:
            if event.get("sessionId") != self.session:
                continue
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(" ".join(str(a.get("value", a)) for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                found.append(str(params.get("exceptionDetails")))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(params["entry"].get("text", ""))
        return found

    def requests(self) -> list[str]:
        """URL of every network request the page made."""
        self.evaluate("0")
        return [
            event["params"]["request"]["url"]
            for event in self.browser.events
            if event.get("sessionId") == self.session
            and event.get("method") == "Network.requestWillBeSent"
        ]

    def screenshot(self, path: Path, *, width: int = 1280) -> None:
        """A PNG of the whole page (resized to its full height first)."""
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        self.command(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        self.evaluate("window.dispatchEvent(new Event('resize')); 0")
        time.sleep(0.5)  # let plotly redraw at the new size
        data = self.command("Page.captureScreenshot", {"format": "png"})["data"]
        path.write_bytes(base64.b64decode(data))


def _demo_screenshot(out: Path) -> None:
    """Backtest the demo strategy on 30 days of the sample BTCUSDT market, dump its HTML
    report and screenshot it (how docs/demo-report.png is made)."""
    import asyncio
    from datetime import UTC, datetime, timedelta

    import backtest_kit as bk
    from backtest_kit.demo import trend_follow

    start = datetime(2024, 1, 8, tzinfo=UTC)
    bk.data.add_sample_exchange("sample")
    bk.add_strategy("trend-follow", "15m", trend_follow, note="example strategy")
    bk.add_frame("demo", "1m", start, start + timedelta(days=30) - timedelta(minutes=1))
    bk.Backtest.run_sync(
        "BTCUSDT", strategy_name="trend-follow", exchange_name="sample", frame_name="demo"
    )
    with tempfile.TemporaryDirectory() as tmp:
        html = asyncio.run(bk.Backtest.dump("BTCUSDT", "trend-follow", path=tmp, format="html"))
        assert html is not None
        with Browser(chromium_or_skip()) as browser:
            page = Page(browser, html.as_uri())
            page.wait_for("document.querySelectorAll('.main-svg').length > 0")
            assert not page.errors(), page.errors()
            page.screenshot(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    _demo_screenshot(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/demo-report.png"))
