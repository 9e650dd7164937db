"""Real Firefox, real server, all on loopback: Debian's firefox-esr calls ``tricam serve``.

The Chromium test's twin for the second browser issue 2 asks for. Firefox is driven through
its built-in WebDriver BiDi agent (no geckodriver; see tests/e2e/firefox_inside.py) and uses
its own fake camera, which paints a flat colour (with a small timestamp) that starts pure
green and drifts through cyan to blue, with no red at all for its first ~8 s (measured on
firefox-esr 153). The page connects by itself, the test
picks ``bronze`` in the page's own style menu, and the received pixels must turn warm while
the camera's stay green. Server and Firefox run in a fresh network namespace with only
``lo`` (tests/e2e/netns.py); the screenshot and logs stay in artifacts/e2e/.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import netns
from tests.e2e.browser_inside import REPO
from tests.e2e.firefox_inside import FIREFOX

pytestmark = pytest.mark.browser
ARTIFACTS = REPO / "artifacts" / "e2e"


def _unavailable() -> str | None:
    if not os.access(FIREFOX, os.X_OK):
        return f"{FIREFOX} missing (apt-get install firefox-esr)"
    if not (REPO / "client" / "index.html").is_file():
        return "client/index.html is missing"
    return netns.unavailable()


def warmth(m: dict[str, Any]) -> float:
    """Red minus blue, as a fraction of full scale: bronze is warm, the fake camera is not.

    (A blue/red ratio is meaningless here: the fake camera's red channel is zero.)
    """
    r, _, b = m["rgb"]
    return float((r - b) / 255.0)


def distance(a: dict[str, Any], b: dict[str, Any]) -> float:
    return math.dist(a["rgb"], b["rgb"])


@pytest.fixture(scope="module")
def firefox_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    reason = _unavailable()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("firefox") / "result.json"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    run = netns.run_isolated("tests.e2e.firefox_inside", ["--screenshot", str(ARTIFACTS / "firefox-bronze.png")],
                             out=out, cwd=REPO, timeout=90)
    result, stderr = run.result, run.stderr
    result["wall_s"] = run.wall_s
    (ARTIFACTS / "firefox-result.json").write_text(json.dumps(result, indent=2))
    assert result.get("ok"), f"firefox run failed ({run.returncode}): {result.get('error')}\n" \
        f"{result.get('traceback', '')}\nconsole: {result.get('console')}\nstderr: {stderr[-3000:]}"
    return result


def test_firefox_page_connects_and_receives_edited_video(firefox_run: dict[str, Any]) -> None:
    assert firefox_run["browser"]["browserName"] == "firefox"
    assert firefox_run["status_text"].startswith("Connected"), firefox_run["status_text"]
    before = firefox_run["before"]
    assert before["remote"]["width"] > 0 and before["remote"]["height"] > 0
    assert before["local"]["width"] > 0
    assert before["style"] == "none"
    # Frames advance: the remote video played on before and after the style switch.
    assert firefox_run["remote_first"]["time"] > 0.3
    assert firefox_run["remote_later"]["time"] > firefox_run["after"]["remote"]["time"] + 0.3
    # With the pass-through style the returned video looks like the camera (VP8 round trip).
    assert distance(before["remote"], before["local"]) < 30, before
    assert firefox_run["healthz"]["ok"] and firefox_run["healthz"]["mode"] == "webrtc"
    assert firefox_run["healthz_after"]["sessions"] == 1


def test_firefox_style_picked_in_the_page_changes_the_received_pixels(firefox_run: dict[str, Any]) -> None:
    before, after = firefox_run["before"], firefox_run["after"]
    assert after["style"] == "bronze"
    assert "bronze_pixels" in firefox_run["steps"], (before, after)
    # The camera is still in the green-to-cyan start of its colour cycle (where it has no red),
    # which the comparisons below rely on.
    assert after["local"]["time"] < 6, after["local"]
    assert warmth(after["local"]) < 0.1 and warmth(before["remote"]) < 0.1, (before, after)
    # Bronze maps luminance onto a brown-to-gold palette: red well above blue, and far from
    # both the camera now and what came back before the switch.
    remote = after["remote"]
    r, g, b = remote["rgb"]
    assert r > g > b, remote
    assert b < 0.55 * r, remote
    assert warmth(remote) > warmth(after["local"]) + 0.3, (after["local"], remote)
    assert warmth(remote) > warmth(before["remote"]) + 0.3, (before["remote"], remote)
    assert distance(remote, after["local"]) > 80 and distance(remote, before["remote"]) > 80, (before, after)


def test_firefox_screenshot_kept_and_run_was_quick(firefox_run: dict[str, Any]) -> None:
    png = Path(firefox_run["screenshot"])
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert firefox_run["wall_s"] < 60, firefox_run["steps"]
