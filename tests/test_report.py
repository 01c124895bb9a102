"""The HTML report, opened in headless Chromium through the DevTools protocol.

Chromium runs with --remote-debugging-pipe: the protocol travels over file
descriptors 3 and 4, so the test opens no socket. Debian's ``chromium``
package provides the browser (.ci/run installs it).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import select
import shutil
import struct
import subprocess
import time
from pathlib import Path

import duckdb
import pytest

from duckmkt import i18n
from duckmkt.report import CHART_IDS, write_report
from duckmkt.scoring import register

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--mute-audio",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)
PROTOCOL_TIMEOUT_SECONDS = 60.0

# Per chart: the div exists, plotly drew its SVG, it has traces and marks
# (bars, points or line paths) and a visible size.
CHART_STATUS_JS = """
JSON.stringify(%s.map(id => {
    const element = document.getElementById(id);
    if (!element) { return {id: id, found: false}; }
    const box = element.getBoundingClientRect();
    return {
        id: id,
        found: true,
        svgs: element.querySelectorAll("svg.main-svg").length,
        traces: (element._fullData || []).length,
        marks: element.querySelectorAll("g.point, path.js-line").length,
        width: box.width,
        height: box.height,
    };
}))
"""


class ChromiumPipe:
    """A headless Chromium process driven over the DevTools protocol on a pipe."""

    def __init__(self, executable: str, user_data_dir: Path):
        # Both ends go above fd 10 first, so that placing them on 3 and 4 in
        # the child cannot overwrite one with the other.
        to_browser_read, to_browser_write = os.pipe()
        from_browser_read, from_browser_write = os.pipe()
        browser_in = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD_CLOEXEC, 10)
        browser_out = fcntl.fcntl(from_browser_write, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_browser_read)
        os.close(from_browser_write)

        def attach_pipes() -> None:
            os.dup2(browser_in, 3)
            os.dup2(browser_out, 4)

        self.process = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=False,
            preexec_fn=attach_pipes,
        )
        os.close(browser_in)
        os.close(browser_out)
        self._to_browser = to_browser_write
        self._from_browser = from_browser_read
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session_id: str | None = None) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        os.write(self._to_browser, json.dumps(message).encode("utf-8") + b"\0")
        deadline = time.monotonic() + PROTOCOL_TIMEOUT_SECONDS
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method} failed: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> dict:
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + PROTOCOL_TIMEOUT_SECONDS
        while True:
            event = self._read(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"Chromium sent no complete message in {PROTOCOL_TIMEOUT_SECONDS} s")
            ready, _, _ = select.select([self._from_browser], [], [], remaining)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium closed the protocol pipe (exit code {self.process.poll()})")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


def open_in_chromium(page: Path, screenshot: Path, user_data_dir: Path) -> tuple[list[dict], list[dict]]:
    """Load ``page``, save a full-page PNG to ``screenshot``; return (chart statuses, protocol events)."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium is not installed; install Debian's package: apt-get install -y chromium")

    browser = ChromiumPipe(executable, user_data_dir)
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session_id=session)
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            session_id=session,
        )
        browser.send("Page.navigate", {"url": page.resolve().as_uri()}, session_id=session)
        browser.wait_for("Page.loadEventFired")

        result = browser.send(
            "Runtime.evaluate",
            {"expression": CHART_STATUS_JS % json.dumps(list(CHART_IDS)), "returnByValue": True},
            session_id=session,
        )
        statuses = json.loads(result["result"]["value"])

        size = browser.send("Page.getLayoutMetrics", session_id=session)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        image = browser.send(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}, session_id=session
        )
        screenshot.write_bytes(base64.b64decode(image["data"]))
        return statuses, list(browser.events)
    finally:
        browser.close()


def console_errors(events: list[dict]) -> list[str]:
    """Return the uncaught exceptions, console.error calls and error log entries among the protocol events."""
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            errors.append(json.dumps(params["exceptionDetails"])[:500])
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(json.dumps(params.get("args"))[:500])
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            errors.append(params["entry"].get("text", "")[:500])
    return errors


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def report_path(tmp_path_factory, small_db, trained_model_dir) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    con = duckdb.connect(str(small_db), read_only=True)
    try:
        scorer = register(con, trained_model_dir)
        write_report(con, scorer, path)
    finally:
        con.close()
    return path


def test_report_is_one_self_contained_file(report_path):
    page = report_path.read_text(encoding="utf-8")

    assert page.startswith("<!DOCTYPE html>")
    assert '<html lang="en">' in page
    assert re.search(r"<script[^>]+src=", page) is None
    assert re.search(r"<link[^>]+href=", page) is None
    assert "Plotly.newPlot" in page
    for chart_id in CHART_IDS:
        assert f'id="{chart_id}"' in page, chart_id


def test_report_renders_in_chromium(report_path, tmp_path):
    screenshot = tmp_path / "report.png"
    statuses, events = open_in_chromium(report_path, screenshot, tmp_path / "chromium-profile")

    assert console_errors(events) == []
    requests = [event["params"]["request"]["url"] for event in events if event.get("method") == "Network.requestWillBeSent"]
    assert requests, "the page load should show up as a file:// request"
    assert [url for url in requests if not url.startswith(("file:", "data:", "about:"))] == []
    assert [status["id"] for status in statuses] == list(CHART_IDS)
    for status in statuses:
        assert status["found"], status
        assert status["svgs"] >= 1, status
        assert status["traces"] >= 1, status
        assert status["marks"] >= 1, status
        assert status["width"] > 300, status
        assert status["height"] > 300, status
    width, height = png_size(screenshot.read_bytes())
    assert width == 1280
    assert height > 3000
    assert screenshot.stat().st_size > 100_000


def test_report_language_follows_active_language(small_db, trained_model_dir, tmp_path):
    path = tmp_path / "report-zh.html"
    con = duckdb.connect(str(small_db), read_only=True)
    try:
        i18n.set_language("zh")
        scorer = register(con, trained_model_dir)
        write_report(con, scorer, path)
    finally:
        i18n.set_language("en")
        con.close()

    assert '<html lang="zh-CN">' in path.read_text(encoding="utf-8")
