"""Open a page in the machine's headless Chromium and say what a user would see.

The DevTools protocol runs over a pipe (`--remote-debugging-pipe`: NUL-separated JSON on the
browser's fds 3 and 4), so no port is opened and no websocket client is needed. Host names
resolve to nothing (`--host-resolver-rules`), and every request the page makes is recorded, so a
test can assert that none left the file. The browser comes from PATH; it is never downloaded.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_browser() -> str | None:
    return next((path for path in map(shutil.which, NAMES) if path), None)


@dataclass
class Visit:
    """What one page load showed: console output, errors, requests, the DOM and a screenshot."""

    console: list[str] = field(default_factory=list)  # console API calls and log entries
    exceptions: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dom: str = ""
    probe: Any = None  # the value of the probe expression, evaluated after load
    screenshot: bytes = b""


class _Pipe:
    def __init__(self, browser: str, profile: str) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        flags = [
            "--headless",
            "--no-sandbox",  # the tests run as root in CI, where Chromium's sandbox cannot start
            "--disable-gpu",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "about:blank",
        ]
        # bash, not sh: dash refuses file descriptors above 9 in redirections.
        script = f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}'
        self.process = subprocess.Popen(
            ["bash", "-c", script, browser, *flags],
            pass_fds=(to_browser_r, from_browser_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its renderers and crash handler go with it at close
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, session: str | None = None, timeout: float = 30, **params):
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read(timeout)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._read(timeout)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def _read(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_browser], [], [], max(0.0, left))
            if not ready:
                raise TimeoutError(f"the browser said nothing for {timeout:g}s")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                stderr = self.process.stderr.read().decode(errors="replace")[-2000:]  # type: ignore[union-attr]
                raise RuntimeError(f"the browser exited: {stderr}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self) -> None:
        for fd in (self._to_browser, self._from_browser):
            os.close(fd)
        # The whole group: a renderer still writing into the profile made its removal fail.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _group_alive(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def visit(url: str, probe: str, width: int = 1600, height: int = 1400) -> Visit:
    """Load `url` at width x height, evaluate `probe` (JS returning JSON-able data), screenshot."""
    browser = find_browser()
    assert browser, "no Chromium on PATH"
    with tempfile.TemporaryDirectory(prefix="overnight-browser-") as profile:
        pipe = _Pipe(browser, profile)
        try:
            return _visit(pipe, url, probe, width, height)
        finally:
            pipe.close()


def _visit(pipe: _Pipe, url: str, probe: str, width: int, height: int) -> Visit:
    target = pipe.call("Target.createTarget", url="about:blank")["targetId"]
    session = pipe.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        pipe.call(f"{domain}.enable", session)
    pipe.call(
        "Emulation.setDeviceMetricsOverride",
        session,
        width=width,
        height=height,
        deviceScaleFactor=1,
        mobile=False,
    )
    pipe.events.clear()
    pipe.call("Page.navigate", session, url=url)
    pipe.wait_for("Page.loadEventFired")
    result = pipe.call("Runtime.evaluate", session, expression=probe, returnByValue=True)
    dom = pipe.call(
        "Runtime.evaluate",
        session,
        expression="document.documentElement.outerHTML",
        returnByValue=True,
    )
    shot = pipe.call("Page.captureScreenshot", session, format="png")
    time.sleep(0.2)  # late console messages and requests
    pipe.call("Runtime.evaluate", session, expression="1")
    return _collect(pipe.events, result, dom, shot)


def _collect(events, result, dom, shot) -> Visit:
    seen = Visit(
        dom=dom["result"].get("value", ""),
        probe=result["result"].get("value"),
        screenshot=base64.b64decode(shot["data"]),
    )
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled":
            seen.console.append(
                f"{params.get('type')}: "
                + " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
            )
        elif method == "Log.entryAdded":
            entry = params["entry"]
            seen.console.append(f"{entry.get('level')}: {entry.get('text')} {entry.get('url', '')}")
        elif method == "Runtime.exceptionThrown":
            seen.exceptions.append(json.dumps(params.get("exceptionDetails", {}))[:2000])
        elif method == "Network.requestWillBeSent":
            seen.requests.append(params["request"]["url"])
    return seen
