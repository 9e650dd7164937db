"""The part of the client error-path test that runs inside the isolated network namespace.

``python -m tests.e2e.errors_inside --y4m CLIP --out RESULT.json --artifacts DIR`` brings ``lo``
up and drives Debian's Chromium through chromedriver in three scenes, all on 127.0.0.1:

* ``denied``: Chromium refuses every camera request (``--use-fake-ui-for-media-stream=deny``);
  the page is loaded from a real ``tricam serve`` and watched for a few seconds afterwards.
* ``unreachable``: the page comes from a plain static file server (``python -m http.server``
  over client/), which has no ``/ws``, so signalling can never connect.
* ``recovery``: the page calls a real ``tricam serve``; the server is killed mid-call and, a
  little later, started again on the same port; the page is watched until it is back.
* ``token``: a server started with ``--token`` (tests/e2e/faulty_serve.py: ``tricam serve``
  plus a style that raises); the page opened without the token must say so and not retry,
  then with ``?token=`` it connects.
* ``failing``: on that page, the ``broken`` style is picked; the page must show it failing,
  keep the call (camera passed through), not reconnect, and clear the mark on ``none``.

A probe injected before the page's own script counts getUserMedia calls and WebSocket
attempts (with their times) and records every change of ``data-state`` / ``#status``, so the
pytest side (tests/e2e/test_client_errors.py) can assert on the page's whole history. Like
``browser_inside`` this script decides nothing; it writes what it saw to RESULT.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import IO, Any

from tests.e2e import netns
from tests.e2e.browser_inside import (
    CHROMEDRIVER,
    MEAN_RGB_JS,
    REPO,
    chromium_options,
    free_port,
    healthz,
    poll,
    start_serve,
    stop,
    video_advancing,
)

# Runs before any of the page's scripts: wraps getUserMedia and WebSocket to count calls, and
# logs every change of body[data-state] or #status text with the page-relative time (ms).
PROBE_JS = r"""
(() => {
  const probe = window.__probe = {gum: [], gumErrors: [], ws: [], timeline: []};
  const md = navigator.mediaDevices;
  if (md && md.getUserMedia) {
    const orig = md.getUserMedia.bind(md);
    md.getUserMedia = (constraints) => {
      probe.gum.push(performance.now());
      return orig(constraints).catch((err) => { probe.gumErrors.push(err.name); throw err; });
    };
  }
  const NativeWS = window.WebSocket;
  window.WebSocket = class extends NativeWS {
    constructor(...args) { super(...args); probe.ws.push(performance.now()); }
  };
  let last = "";
  const record = () => {
    const body = document.body, status = document.getElementById("status");
    if (!body || !status) return;
    const state = body.dataset.state || "", text = status.textContent;
    const key = state + "\u0000" + text;
    if (key !== last) { last = key; probe.timeline.push([performance.now(), state, text]); }
  };
  new MutationObserver(record).observe(document, {
    subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ["data-state"],
  });
})();
"""

E2E_TOKEN = "e2e-token-3f9a"
FAILING_JS = """return {failing: document.body.dataset.failing || '', state: document.body.dataset.state || '',
  badge: document.getElementById('style-badge').textContent,
  notice: document.getElementById('notice').hidden ? '' : document.getElementById('notice').textContent,
  remote: (() => { const v = document.getElementById('remote'); return v ? v.currentTime : 0; })()}"""
PROBE_READ_JS = "return window.__probe ? JSON.parse(JSON.stringify(window.__probe)) : null"
STATE_JS = "return [document.body.dataset.state || '', document.getElementById('status').textContent]"


class Page:
    """One Chromium (fresh profile) with the probe installed on every document."""

    def __init__(self, y4m: Path, log: Path, *, deny_camera: bool = False) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service

        self.profile = Path(tempfile.mkdtemp(prefix="tricam-chromium-"))
        base = chromium_options(y4m, self.profile)
        opts = Options()
        opts.binary_location = base.binary_location
        for arg in base.arguments:
            if deny_camera and arg == "--use-fake-ui-for-media-stream":
                arg += "=deny"  # the fake permission prompt answers "Block" instead of "Allow"
            opts.add_argument(arg)
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER, log_output=str(log)), options=opts)
        self.driver.set_page_load_timeout(20)
        self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": PROBE_JS})

    def state(self) -> tuple[str, str]:
        s, text = self.driver.execute_script(STATE_JS)
        return str(s), str(text)

    def probe(self) -> dict[str, Any]:
        return dict(self.driver.execute_script(PROBE_READ_JS) or {})

    def mean(self, selector: str) -> dict[str, Any] | None:
        m = self.driver.execute_script(MEAN_RGB_JS, selector)
        return dict(m) if m else None

    def playing(self, selector: str, timeout: float) -> dict[str, Any]:
        """Wait until ``selector`` has frames and its play position has advanced by 0.3 s."""
        return poll(f"{selector} to play", video_advancing(self.mean, selector), timeout)

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)


def run(y4m: Path, artifacts: Path) -> dict[str, Any]:
    from selenium.webdriver.support.ui import Select

    result: dict[str, Any] = {"ok": False, "steps": {}}
    t0 = time.monotonic()

    def step(name: str) -> None:
        result["steps"][name] = round(time.monotonic() - t0, 2)

    netns.bring_up_loopback()
    artifacts.mkdir(parents=True, exist_ok=True)
    logs: dict[str, IO[str]] = {}

    def log(name: str) -> IO[str]:
        """artifacts/errors-NAME.log, opened once per run (the restarted server appends to it)."""
        if name not in logs:
            logs[name] = open(artifacts / f"errors-{name}.log", "w")  # noqa: SIM115 - closed below
        return logs[name]

    port, static_port, token_port = free_port(), free_port(), free_port()
    extra: list[subprocess.Popen[bytes]] = []
    url, static_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{static_port}"
    server = start_serve(port, log("server"))
    static = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(static_port), "--bind", "127.0.0.1",
         "--directory", str(REPO / "client")],
        cwd=REPO, stdout=log("static"), stderr=subprocess.STDOUT,
    )
    pages: list[Page] = []
    page: Page | None = None
    try:
        def healthy() -> dict[str, Any] | None:
            return healthz(server, url)

        poll("the static server", lambda: _answers(static, static_url + "/index.html"), 10)
        result["healthz"] = poll("the server's /healthz", healthy, 30)
        step("servers_up")

        # --- 1. camera denied -------------------------------------------------------------
        page = Page(y4m, artifacts / "errors-denied.chromedriver.log", deny_camera=True)
        pages.append(page)
        result["browser"] = page.driver.capabilities.get("browserVersion")
        step("denied_browser_up")
        page.driver.get(url + "/")
        poll("the page to give up on the camera", lambda: page.state()[0] == "error", 15)
        result["denied_first"] = page.state()
        step("denied_error")
        time.sleep(3.0)  # long enough for several retries, were the page to retry
        result["denied_later"] = page.state()
        result["denied_probe"] = page.probe()
        result["denied_healthz"] = healthy()
        result["denied_controls_disabled"] = page.driver.execute_script(
            "return [document.getElementById('style').disabled, document.getElementById('intensity').disabled]")
        page.driver.save_screenshot(str(artifacts / "errors-denied.png"))
        step("denied_done")

        # --- 2. server unreachable (same browser: no camera is ever reached) --------------
        page.driver.get(static_url + "/")
        poll("the page to report the server unreachable", lambda: page.state()[0] == "error", 10)
        result["unreachable_first"] = page.state()
        step("unreachable_error")
        time.sleep(4.0)  # backoff 0.5, 1, 2 s: attempts at about 0, 0.5, 1.5 and 3.5 s
        result["unreachable_later"] = page.state()
        result["unreachable_probe"] = page.probe()
        page.driver.save_screenshot(str(artifacts / "errors-unreachable.png"))
        page.close()
        pages.remove(page)
        step("unreachable_done")

        # --- 3. recovery: the server dies mid-call and comes back on the same port -------
        page = Page(y4m, artifacts / "errors-recovery.chromedriver.log")
        pages.append(page)
        page.driver.get(url + "/")
        poll("the page to connect", lambda: page.state()[0] == "connected", 30)
        result["call_first"] = page.playing("video#remote", 20)
        step("call_up")
        result["killed_at_ms"] = page.driver.execute_script("return performance.now()")
        killed = time.monotonic()
        result["kill_rc"] = stop(server, signal.SIGKILL)  # a crash, not a goodbye
        poll("the page to report the drop", lambda: page.state()[0] == "error", 10)
        result["drop_first"] = page.state()
        step("drop_reported")
        time.sleep(max(0.0, 2.0 - (time.monotonic() - killed)))  # a short outage
        server = start_serve(port, log("server"))
        result["healthz_restarted"] = poll("the restarted server's /healthz", healthy, 30)
        result["restarted_at_ms"] = page.driver.execute_script("return performance.now()")
        step("server_restarted")
        poll("the page to reconnect", lambda: page.state()[0] == "connected", 30)
        step("reconnected")
        result["reconnected_state"] = page.state()
        result["call_again"] = page.playing("video#remote", 20)
        Select(page.driver.find_element("css selector", "select#style")).select_by_value("bronze")

        def bronze_seen() -> dict[str, Any] | None:
            m = page.mean("video#remote")
            return m if m and m["rgb"][2] < 0.55 * m["rgb"][0] else None

        try:  # the pixels decide on the pytest side; record them either way
            poll("bronze pixels in video#remote", bronze_seen, 10)
            step("bronze_pixels")
        except TimeoutError:
            pass
        result["after_bronze"] = {"style": page.driver.execute_script("return document.body.dataset.style || ''"),
                                  "local": page.mean("video#local"), "remote": page.mean("video#remote")}
        result["recovery_probe"] = page.probe()
        result["healthz_after"] = healthy()
        page.driver.save_screenshot(str(artifacts / "errors-recovered.png"))
        step("recovery_done")

        # --- 4. a server that needs a token --------------------------------------------------
        token_url = f"http://127.0.0.1:{token_port}"
        token_server = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.faulty_serve", "--host", "127.0.0.1", "--port", str(token_port),
             "--ice-host", "127.0.0.1", "--token", E2E_TOKEN],
            cwd=REPO, stdout=log("token-server"), stderr=subprocess.STDOUT,
        )
        extra.append(token_server)
        poll("the token server's /healthz", lambda: healthz(token_server, token_url, "faulty_serve"), 30)
        page.driver.get(token_url + "/")
        poll("the page to report the missing token", lambda: "token" in page.state()[1], 10)
        result["token_missing_first"] = page.state()
        time.sleep(3.0)  # several retries' worth, were the page to retry
        result["token_missing_later"] = page.state()
        result["token_missing_probe"] = page.probe()
        page.driver.save_screenshot(str(artifacts / "errors-token-missing.png"))
        step("token_missing")
        page.driver.get(token_url + f"/?token={E2E_TOKEN}")
        poll("the page to connect with its token", lambda: page.state()[0] == "connected", 30)
        result["token_call"] = page.playing("video#remote", 20)
        step("token_connected")

        # --- 5. a style that fails ---------------------------------------------------------------
        Select(page.driver.find_element("css selector", "select#style")).select_by_value("broken")
        poll("the page to show the style failing", lambda: page.driver.execute_script(FAILING_JS)["failing"], 10)
        result["failing_first"] = page.driver.execute_script(FAILING_JS)
        time.sleep(3.0)
        result["failing_later"] = page.driver.execute_script(FAILING_JS)
        result["failing_video"] = page.playing("video#remote", 10)  # still moving: passed through
        page.driver.save_screenshot(str(artifacts / "errors-failing-style.png"))
        Select(page.driver.find_element("css selector", "select#style")).select_by_value("none")
        poll("the failing mark to clear", lambda: not page.driver.execute_script(FAILING_JS)["failing"], 10)
        result["failing_cleared"] = page.driver.execute_script(FAILING_JS)
        result["failing_probe"] = page.probe()
        step("failing_done")
        result["ok"] = True
    except Exception as e:
        result["error"] = f"{type(e).__name__}: {e}"
        result["traceback"] = traceback.format_exc()
        if page is not None and page in pages:
            try:
                result["failed_state"] = page.state()
                result["failed_probe"] = page.probe()
                result["console"] = page.driver.get_log("browser")[-20:]
                page.driver.save_screenshot(str(artifacts / "errors-failed.png"))
            except Exception:
                pass
    finally:
        for p in pages:
            p.close()
        step("browser_closed")
        result["server_rc"] = stop(server)
        result["static_rc"] = stop(static)
        for proc in extra:
            stop(proc)
        for f in logs.values():
            f.close()
        step("done")
    return result


def _answers(proc: subprocess.Popen[bytes], address: str) -> bool:
    """Whether ``address`` answers 200; raises once ``proc`` (the server behind it) has exited."""
    import urllib.request

    if proc.poll() is not None:
        raise RuntimeError(f"{address}: server exited with {proc.returncode}")
    try:
        with urllib.request.urlopen(address, timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--y4m", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--artifacts", type=Path, required=True)
    args = parser.parse_args()
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never try to fetch a driver
    result = run(args.y4m.resolve(), args.artifacts.resolve())
    args.out.write_text(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
