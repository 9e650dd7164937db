"""The part of the browser test that runs inside the isolated network namespace.

``python -m tests.e2e.browser_inside --y4m CLIP --out RESULT.json --screenshot PNG`` brings
``lo`` up, starts ``tricam serve`` on 127.0.0.1 with ICE restricted to 127.0.0.1, drives
Debian's Chromium (fake camera fed from CLIP) through chromedriver, and writes what it
measured to RESULT.json. It decides nothing: the pytest test outside reads the figures and
asserts, so a failure shows the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

from tests.e2e import netns

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/lib/chromium/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
T = TypeVar("T")

# Mean RGB of a <video> drawn into a small canvas, plus its size and play position.
MEAN_RGB_JS = """
const v = document.querySelector(arguments[0]);
if (!v || !v.videoWidth) return null;
const c = document.createElement('canvas');
c.width = 160; c.height = Math.max(1, Math.round(160 * v.videoHeight / v.videoWidth));
const g = c.getContext('2d', {willReadFrequently: true});
g.drawImage(v, 0, 0, c.width, c.height);
const d = g.getImageData(0, 0, c.width, c.height).data;
let r = 0, gr = 0, b = 0;
for (let i = 0; i < d.length; i += 4) { r += d[i]; gr += d[i + 1]; b += d[i + 2]; }
const n = d.length / 4;
return {rgb: [r / n, gr / n, b / n], width: v.videoWidth, height: v.videoHeight, time: v.currentTime};
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def poll(what: str, fn: Callable[[], T | None], timeout: float, every: float = 0.1) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


def start_serve(port: int, log: IO[str]) -> subprocess.Popen[bytes]:
    """``tricam serve`` on 127.0.0.1:``port`` with ICE restricted to 127.0.0.1, logging to ``log``."""
    return subprocess.Popen(
        [sys.executable, "-m", "streamer.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--ice-host", "127.0.0.1"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
    )


def healthz(proc: subprocess.Popen[bytes], base: str, name: str = "serve") -> dict[str, Any] | None:
    """``base``/healthz as a dict; None while it does not answer; raises once ``proc`` has exited."""
    if proc.poll() is not None:
        raise RuntimeError(f"{base} ({name}) exited with {proc.returncode}")
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=1) as r:
            return dict(json.load(r))
    except OSError:
        return None


def control_query(base: str) -> dict[str, Any]:
    """Ask a control-mode server, as a second remote control, for its styles and stats."""
    import asyncio

    import aiohttp

    async def ask() -> dict[str, Any]:
        got: dict[str, Any] = {}
        async with aiohttp.ClientSession() as http, http.ws_connect(base + "/ws") as ws:
            await ws.send_str(json.dumps({"type": "list_styles"}))
            await ws.send_str(json.dumps({"type": "get_stats"}))
            while not {"hello", "styles", "stats"} <= got.keys():
                msg = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
                got[msg["type"]] = msg
        return {"mode": got["hello"]["mode"], "current": got["styles"]["current"], "stats": got["stats"]}

    return asyncio.run(ask())


def chromium_options(y4m: Path, profile: Path) -> Any:
    from selenium.webdriver.chrome.options import Options

    opts = Options()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-default-apps", "--disable-extensions", "--disable-dev-shm-usage", "--mute-audio",
        "--disable-features=MediaRouter,OptimizationHints,Translate",
        f"--user-data-dir={profile}", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={y4m}", "--allow-loopback-in-peer-connection",
        "--autoplay-policy=no-user-gesture-required", "--window-size=1280,800",
    ):
        opts.add_argument(flag)
    return opts


def video_advancing(
    mean: Callable[[str], dict[str, Any] | None], selector: str
) -> Callable[[], dict[str, Any] | None]:
    """A poll check that passes once ``selector``'s play time is 0.3 s past its first frame.

    ``mean`` reads the element's pixel mean and ``time`` (each browser driver has its own).
    """
    first = poll(f"{selector} to have video", lambda: mean(selector), 20)

    def advanced() -> dict[str, Any] | None:
        m = mean(selector)
        return m if m and m["time"] > first["time"] + 0.3 else None

    return advanced


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    """Stop ``proc`` (``sig``, then SIGKILL after 10 s); its exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def run(y4m: Path, screenshot: Path) -> dict[str, Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import Select

    result: dict[str, Any] = {"ok": False, "steps": {}}
    t0 = time.monotonic()

    def step(name: str) -> None:
        result["steps"][name] = round(time.monotonic() - t0, 2)

    netns.bring_up_loopback()
    step("namespace")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server_log = open(screenshot.with_suffix(".server.log"), "w")  # noqa: SIM115 - closed below
    server = start_serve(port, server_log)
    # `tricam cam` on the same clip, started now so both servers warm up together: the page
    # opened on it becomes a remote control of the local pipeline.
    cam_port = free_port()
    cam_url = f"http://127.0.0.1:{cam_port}"
    cam_log = open(screenshot.with_suffix(".cam.log"), "w")  # noqa: SIM115 - closed below
    cam = subprocess.Popen(
        [sys.executable, "-m", "streamer.cli", "cam", "--input", str(y4m), "--host", "127.0.0.1",
         "--port", str(cam_port), "--seconds", "90"],
        cwd=REPO, stdout=cam_log, stderr=subprocess.STDOUT,
    )
    profile = Path(tempfile.mkdtemp(prefix="tricam-chromium-"))
    driver = None
    try:
        def healthy(proc: subprocess.Popen[bytes] = server, base: str = url) -> dict[str, Any] | None:
            return healthz(proc, base, "serve" if proc is server else "cam")

        result["healthz"] = poll("the server's /healthz", healthy, 30)
        step("server_up")
        service = Service(CHROMEDRIVER, log_output=str(screenshot.with_suffix(".chromedriver.log")))
        driver = webdriver.Chrome(service=service, options=chromium_options(y4m, profile))
        driver.set_page_load_timeout(20)
        step("browser_up")
        driver.get(url + "/")

        def state() -> str:
            return str(driver.execute_script("return document.body.dataset.state || ''"))

        def connected() -> bool:
            s = state()
            if s == "error":
                raise RuntimeError(f"page error: {driver.find_element('id', 'status').text}")
            return s == "connected"

        poll("the page to connect", connected, 30)
        step("connected")

        def mean(selector: str) -> dict[str, Any] | None:
            m = driver.execute_script(MEAN_RGB_JS, selector)
            return dict(m) if m else None

        poll("video#remote to play", video_advancing(mean, "video#remote"), 20)
        step("remote_playing")
        time.sleep(0.5)
        result["before"] = {"style": driver.execute_script("return document.body.dataset.style || ''"),
                            "local": mean("video#local"), "remote": mean("video#remote")}

        Select(driver.find_element("css selector", "select#style")).select_by_value("bronze")
        poll("the page to report style bronze",
             lambda: driver.execute_script("return document.body.dataset.style") == "bronze", 10)
        step("style_bronze")

        def bronze_seen() -> dict[str, Any] | None:
            m = mean("video#remote")
            return m if m and m["rgb"][2] < 0.55 * m["rgb"][0] else None

        # The pixels decide; if they never turn, record what they were instead of failing here.
        try:
            poll("bronze pixels in video#remote", bronze_seen, 10)
            step("bronze_pixels")
        except TimeoutError:
            pass
        time.sleep(0.5)
        result["after"] = {"style": driver.execute_script("return document.body.dataset.style || ''"),
                           "local": mean("video#local"), "remote": mean("video#remote")}
        result["stats_text"] = driver.find_element("id", "stats").text
        result["status_text"] = driver.find_element("id", "status").text
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(screenshot))
        result["screenshot"] = str(screenshot)
        result["healthz_after"] = healthy()
        step("webrtc_done")

        # Control mode: the same page, served by `tricam cam`, drives the local pipeline.
        result["cam_healthz"] = poll("tricam cam's /healthz", lambda: healthy(cam, cam_url), 30)
        driver.get(cam_url + "/")
        poll("the page to enter control mode", lambda: state() == "control", 20)
        poll("the style menu to fill",
             lambda: driver.execute_script("return document.querySelector('select#style').options.length"), 10)
        result["control_before"] = control_query(cam_url)
        Select(driver.find_element("css selector", "select#style")).select_by_value("bronze")
        poll("the control page to report bronze",
             lambda: driver.execute_script("return document.body.dataset.style") == "bronze", 10)
        time.sleep(1.2)  # the page receives a stats push about once a second
        result["control_after"] = control_query(cam_url)
        result["control_stats_text"] = driver.find_element("id", "stats").text
        result["control_status_text"] = driver.find_element("id", "status").text
        driver.save_screenshot(str(screenshot.with_name("browser-control.png")))
        step("control_done")
        result["ok"] = True
    except Exception as e:
        result["error"] = f"{type(e).__name__}: {e}"
        result["traceback"] = traceback.format_exc()
        if driver is not None:
            try:
                result["status_text"] = driver.find_element("id", "status").text
                result["console"] = driver.get_log("browser")[-20:]
                driver.save_screenshot(str(screenshot))
            except Exception:
                pass
    finally:
        if driver is not None:
            driver.quit()
        step("browser_closed")
        for name, proc in (("server_rc", server), ("cam_rc", cam)):
            result[name] = stop(proc)
        server_log.close()
        cam_log.close()
        shutil.rmtree(profile, ignore_errors=True)
        step("done")
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--y4m", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--screenshot", type=Path, required=True)
    args = parser.parse_args()
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never try to fetch a driver
    result = run(args.y4m.resolve(), args.screenshot.resolve())
    args.out.write_text(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
