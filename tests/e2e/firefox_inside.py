"""The part of the Firefox test that runs inside the isolated network namespace.

``python -m tests.e2e.firefox_inside --out RESULT.json --screenshot PNG`` brings ``lo`` up,
starts ``tricam serve`` on 127.0.0.1 with ICE restricted to 127.0.0.1, starts Debian's
firefox-esr headless with a fresh profile (fake camera, no prompts, no outside traffic) and
drives it over Firefox's built-in WebDriver BiDi agent (no geckodriver), then writes what it
measured to RESULT.json. Like ``browser_inside`` it decides nothing: tests/e2e/test_firefox.py
reads the figures and asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import traceback
from collections import deque
from pathlib import Path
from typing import IO, Any

import aiohttp

from tests.e2e import netns
from tests.e2e.browser_inside import MEAN_RGB_JS, free_port, healthz, poll, start_serve, stop, video_advancing

FIREFOX = "/usr/lib/firefox-esr/firefox-esr"

# A fresh profile's user.js: Firefox's fake camera without a prompt, WebRTC over loopback, and
# every background service that would phone home switched off (the namespace has no route
# out anyway; these keep the run quiet and quick).
PREFS: dict[str, bool | int | str] = {
    # Camera and playback.
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    # A standing camera grant. Without one Firefox treats the page as having no camera permission
    # even while the fake camera runs, and gathers ICE only on the default route's address (RFC 8828
    # mode 3): in a namespace with only `lo` there is no default route, so no candidates at all.
    "permissions.default.camera": 1,
    "media.autoplay.default": 0,
    "media.autoplay.blocking_policy": 0,
    # ICE on 127.0.0.1: loopback candidates, real addresses (no mDNS names the server cannot resolve).
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.no_host": False,
    "media.peerconnection.ice.default_address_only": False,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "media.peerconnection.ice.proxy_only": False,
    # Nothing to the outside: updates, telemetry, probes, safebrowsing, experiments, push, DoH...
    "app.update.enabled": False,
    "app.update.auto": False,
    "app.normandy.enabled": False,
    "app.normandy.api_url": "",
    "app.shield.optoutstudies.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.blockedURIs.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.downloads.remote.enabled": False,
    "browser.safebrowsing.provider.google4.updateURL": "",
    "browser.safebrowsing.provider.mozilla.updateURL": "",
    "browser.ping-centre.telemetry": False,
    "browser.newtabpage.enabled": False,
    "browser.startup.homepage": "about:blank",
    "browser.startup.page": 0,
    "browser.aboutwelcome.enabled": False,
    "browser.discovery.enabled": False,
    "browser.search.update": False,
    "browser.region.network.url": "",
    "browser.topsites.contile.enabled": False,
    "captivedetect.canonicalURL": "",
    "datareporting.healthreport.uploadEnabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.usage.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "toolkit.telemetry.archive.enabled": False,
    "toolkit.telemetry.server": "http://127.0.0.1:9/",
    "toolkit.coverage.opt-out": True,
    "extensions.getAddons.cache.enabled": False,
    "extensions.update.enabled": False,
    "extensions.systemAddon.update.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "network.trr.mode": 5,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "network.predictor.enabled": False,
    "network.http.speculative-parallel-limit": 0,
    "dom.push.enabled": False,
    "dom.push.connection.enabled": False,
    "services.settings.server": "http://127.0.0.1:9/dead",
    "services.sync.enabled": False,
    "media.gmp-manager.updateEnabled": False,
    "media.gmp-gmpopenh264.enabled": False,
    "remote.prefs.recommended": True,
}

# The page's own style menu, used as a person would: set the value, fire `change`.
PICK_STYLE_JS = """
(name) => {
  const s = document.querySelector('select#style');
  if (!s || s.disabled || ![...s.options].some((o) => o.value === name)) return false;
  s.value = name;
  s.dispatchEvent(new Event('change', {bubbles: true}));
  return true;
}
"""


def write_profile(profile: Path) -> None:
    lines = [f"user_pref({json.dumps(k)}, {json.dumps(v)});" for k, v in PREFS.items()]
    (profile / "user.js").write_text("\n".join(lines) + "\n")


class BiDi:
    """A minimal synchronous WebDriver BiDi client (one command at a time) over aiohttp."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self._loop = asyncio.new_event_loop()
        self._next_id = 0
        self._timeout = timeout
        self.log: deque[dict[str, Any]] = deque(maxlen=30)  # log.entryAdded events, for failures
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        try:
            self._loop.run_until_complete(self._open(url))
        except BaseException:
            self._loop.close()
            raise

    async def _open(self, url: str) -> None:
        self._http = aiohttp.ClientSession()
        try:
            self._ws = await self._http.ws_connect(url, max_msg_size=0, timeout=aiohttp.ClientWSTimeout(ws_close=5))
        except BaseException:
            await self._http.close()
            raise

    async def _call(self, method: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert self._ws is not None
        self._next_id += 1
        my_id = self._next_id
        await self._ws.send_str(json.dumps({"id": my_id, "method": method, "params": params}))
        async with asyncio.timeout(timeout):
            while True:
                msg = await self._ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise ConnectionError(f"BiDi socket: {msg.type.name} {msg.data!r}")
                data = json.loads(msg.data)
                if data.get("type") == "event":
                    if data.get("method") == "log.entryAdded":
                        p = data["params"]
                        self.log.append({"level": p.get("level"), "text": p.get("text")})
                    continue
                if data.get("id") != my_id:
                    continue
                if data.get("type") == "error":
                    raise RuntimeError(f"BiDi {method}: {data.get('error')}: {data.get('message')}")
                return dict(data["result"])

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float | None = None) -> dict[str, Any]:
        return self._loop.run_until_complete(self._call(method, params or {}, timeout or self._timeout))

    def close(self) -> None:
        async def shut() -> None:
            if self._ws is not None:
                await self._ws.close()
            if self._http is not None:
                await self._http.close()

        try:
            self._loop.run_until_complete(asyncio.wait_for(shut(), 5))
        except Exception:
            pass
        self._loop.close()


class Page:
    """One browsing context, with JSON-valued script evaluation."""

    def __init__(self, bidi: BiDi, context: str) -> None:
        self.bidi, self.context = bidi, context

    def _result(self, r: dict[str, Any]) -> Any:
        if r.get("type") == "exception":
            details = r.get("exceptionDetails", {})
            raise RuntimeError(f"page script threw: {details.get('text')}")
        value = r["result"]
        if value.get("type") in ("undefined", "null"):
            return None
        return json.loads(value["value"])

    def js(self, expression: str) -> Any:
        """Evaluate ``expression`` (awaiting promises); its value comes back through JSON."""
        return self._result(self.bidi.call("script.evaluate", {
            "expression": f"(async () => JSON.stringify(await ({expression})))()",
            "target": {"context": self.context}, "awaitPromise": True, "resultOwnership": "none",
        }))

    def call(self, function: str, *args: str) -> Any:
        """Call the JS function source ``function`` with string arguments; JSON-valued like :meth:`js`."""
        return self._result(self.bidi.call("script.callFunction", {
            "functionDeclaration": f"async (...a) => JSON.stringify(await ({function})(...a))",
            "arguments": [{"type": "string", "value": a} for a in args],
            "target": {"context": self.context}, "awaitPromise": True, "resultOwnership": "none",
        }))

    def navigate(self, url: str) -> None:
        self.bidi.call("browsingContext.navigate", {"context": self.context, "url": url, "wait": "complete"})

    def screenshot(self, path: Path) -> None:
        shot = self.bidi.call("browsingContext.captureScreenshot", {"context": self.context})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))


STATUS_JS = "document.getElementById('status').textContent"
MEAN_RGB_FN = "function (selector) {" + MEAN_RGB_JS.replace("arguments[0]", "selector") + "}"


def start_firefox(profile: Path, port: int, log: IO[str]) -> subprocess.Popen[bytes]:
    env = dict(os.environ, HOME=str(profile.parent), MOZ_CRASHREPORTER_DISABLE="1",
               MOZ_DISABLE_AUTO_SAFE_MODE="1", MOZ_HEADLESS="1", XDG_CACHE_HOME=str(profile.parent / "cache"))
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return subprocess.Popen(
        [FIREFOX, "--headless", "--no-remote", "--profile", str(profile), "--remote-debugging-port", str(port),
         "--width", "1280", "--height", "800", "about:blank"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )


def run(screenshot: Path) -> dict[str, Any]:
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
    home = Path(tempfile.mkdtemp(prefix="tricam-firefox-"))
    profile = home / "profile"
    profile.mkdir()
    write_profile(profile)
    ff_log = open(screenshot.with_suffix(".firefox.log"), "w")  # noqa: SIM115 - closed below
    bidi_port = free_port()
    firefox = start_firefox(profile, bidi_port, ff_log)
    bidi: BiDi | None = None
    page: Page | None = None
    try:
        result["healthz"] = poll("the server's /healthz", lambda: healthz(server, url), 30)
        step("server_up")

        def connect_bidi() -> BiDi | None:
            if firefox.poll() is not None:
                raise RuntimeError(f"firefox exited with {firefox.returncode}")
            try:
                return BiDi(f"ws://127.0.0.1:{bidi_port}/session")
            except (OSError, aiohttp.ClientError):
                return None

        bidi = poll("Firefox's WebDriver BiDi socket", connect_bidi, 30, every=0.2)
        session = bidi.call("session.new", {"capabilities": {}})
        result["browser"] = {k: session["capabilities"].get(k) for k in ("browserName", "browserVersion")}
        bidi.call("session.subscribe", {"events": ["log.entryAdded"]})
        contexts = bidi.call("browsingContext.getTree", {"maxDepth": 0})["contexts"]
        page = Page(bidi, contexts[0]["context"] if contexts else
                    bidi.call("browsingContext.create", {"type": "tab"})["context"])
        bidi.call("browsingContext.setViewport",
                  {"context": page.context, "viewport": {"width": 1280, "height": 800}})
        step("browser_up")
        page.navigate(url + "/")
        p = page

        def connected() -> bool:
            s = p.js("document.body.dataset.state || ''")
            if s == "error":
                raise RuntimeError("page error: " + str(p.js(STATUS_JS)))
            return bool(s == "connected")

        poll("the page to connect", connected, 30)
        step("connected")

        def mean(selector: str) -> dict[str, Any] | None:
            m = p.call(MEAN_RGB_FN, selector)
            return dict(m) if m else None

        result["remote_first"] = poll("video#remote to play", video_advancing(mean, "video#remote"), 20)
        step("remote_playing")
        time.sleep(0.5)

        def sample() -> dict[str, Any]:
            return {"style": p.js("document.body.dataset.style || ''"),
                    "local": mean("video#local"), "remote": mean("video#remote")}

        result["before"] = sample()
        poll("bronze in the style menu", lambda: p.call(PICK_STYLE_JS, "bronze"), 10)
        poll("the page to report style bronze", lambda: p.js("document.body.dataset.style") == "bronze", 10)
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
        result["after"] = sample()
        # Frames still advance after the switch (the bronze video is live, not a frozen frame).
        t_after = result["after"]["remote"]["time"] if result["after"]["remote"] else 0.0

        def still_playing() -> dict[str, Any] | None:
            m = mean("video#remote")
            return m if m and m["time"] > t_after + 0.3 else None

        result["remote_later"] = poll("video#remote to keep playing", still_playing, 5)
        result["stats_text"] = p.js("document.getElementById('stats').textContent")
        result["status_text"] = p.js(STATUS_JS)
        page.screenshot(screenshot)
        result["screenshot"] = str(screenshot)
        result["healthz_after"] = healthz(server, url)
        step("webrtc_done")
        result["ok"] = True
    except Exception as e:
        result["error"] = f"{type(e).__name__}: {e}"
        result["traceback"] = traceback.format_exc()
        if page is not None:
            try:
                result["status_text"] = page.js(STATUS_JS)
                page.screenshot(screenshot)
            except Exception:
                pass
    finally:
        if bidi is not None:
            result["console"] = list(bidi.log)
            try:
                bidi.call("browser.close", timeout=5)
            except Exception:
                pass
            bidi.close()
        step("browser_closed")
        for name, proc in (("firefox_rc", firefox), ("server_rc", server)):
            result[name] = stop(proc)
        server_log.close()
        ff_log.close()
        shutil.rmtree(home, ignore_errors=True)
        step("done")
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--screenshot", type=Path, required=True)
    args = parser.parse_args()
    result = run(args.screenshot.resolve())
    args.out.write_text(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
