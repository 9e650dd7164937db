"""Real browser, real server, all on loopback: Debian's Chromium calls ``tricam serve``.

Chromium's fake camera plays a short y4m cut from ../shared/media/v01_talking_male.mp4 (a
synthetic clip where that folder is absent). The page connects by itself, the test picks
``bronze`` in the page's own style menu, and the received pixels must turn bronze while the
local camera's do not. Server, chromedriver and Chromium run in a fresh network namespace
with only ``lo`` (see tests/e2e/netns.py), so nothing can leave this machine. The screenshot
and logs stay in artifacts/e2e/.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import netns
from tests.e2e.browser_inside import CHROMEDRIVER, CHROMIUM, REPO
from tests.e2e.clips import make_clip

pytestmark = pytest.mark.browser
ARTIFACTS = REPO / "artifacts" / "e2e"


def _unavailable() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} missing (apt-get install chromium chromium-driver)"
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed"
    if not (REPO / "client" / "index.html").is_file():
        return "client/index.html is missing"
    return netns.unavailable()


def blue_over_red(m: dict[str, Any]) -> float:
    r, _, b = m["rgb"]
    return float(b / max(r, 1.0))


@pytest.fixture(scope="module")
def browser_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    reason = _unavailable()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("browser")
    clip = work / "camera.y4m"
    origin = make_clip(clip, width=320, height=240, seconds=3.0, fps=25)  # ~8.6 MB of raw 4:2:0
    out = work / "result.json"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    run = netns.run_isolated("tests.e2e.browser_inside", ["--y4m", str(clip), "--screenshot",
                             str(ARTIFACTS / "browser-bronze.png")], out=out, cwd=REPO, timeout=120)
    result, stderr = run.result, run.stderr
    result["wall_s"] = run.wall_s
    result["clip"] = origin
    (ARTIFACTS / "result.json").write_text(json.dumps(result, indent=2))
    assert result.get("ok"), f"browser run failed ({run.returncode}): {result.get('error')}\n" \
        f"{result.get('traceback', '')}\nstderr: {stderr[-3000:]}"
    return result


def test_page_connects_and_receives_edited_video(browser_run: dict[str, Any]) -> None:
    before = browser_run["before"]
    assert before["remote"]["width"] > 0 and before["local"]["width"] > 0
    assert before["style"] == "none"
    # With the pass-through style the returned video looks like the camera (VP8 round trip).
    diff = [abs(a - b) for a, b in zip(before["remote"]["rgb"], before["local"]["rgb"], strict=True)]
    assert max(diff) < 20, (before["local"], before["remote"])
    assert browser_run["healthz"]["ok"] and browser_run["healthz"]["mode"] == "webrtc"


def test_style_picked_in_the_page_changes_the_received_pixels(browser_run: dict[str, Any]) -> None:
    before, after = browser_run["before"], browser_run["after"]
    assert after["style"] == "bronze"
    assert "bronze_pixels" in browser_run["steps"], (before, after)
    # Bronze maps everything onto a brown-to-gold palette: blue falls far below red in the
    # received video, while the camera itself (the local preview) is unchanged.
    assert blue_over_red(after["remote"]) < 0.55, after["remote"]
    assert blue_over_red(after["local"]) > 0.6, after["local"]
    assert blue_over_red(after["remote"]) < blue_over_red(before["remote"]) - 0.15, (before, after)
    r, g, b = after["remote"]["rgb"]
    assert r > g > b


def test_screenshot_kept_and_run_was_quick(browser_run: dict[str, Any]) -> None:
    png = Path(browser_run["screenshot"])
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert browser_run["wall_s"] < 60, browser_run["steps"]


def test_page_is_a_remote_control_of_tricam_cam(browser_run: dict[str, Any]) -> None:
    before, after = browser_run["control_before"], browser_run["control_after"]
    assert browser_run["cam_healthz"]["mode"] == "control"
    assert before["mode"] == "control" and before["current"] == "none"
    # Picking bronze in the page switched the pipeline of the separate `tricam cam` process,
    # which kept editing its own (looped clip) input the whole time.
    assert after["current"] == "bronze" and after["stats"]["style"] == "bronze"
    assert after["stats"]["frames_out"] > before["stats"]["frames_out"] > 0
    assert after["stats"]["fps_out"] > 10
    assert "fps" in browser_run["control_stats_text"]
