"""The web client's error paths in a real Chromium: camera refused, server unreachable, server lost.

Debian's Chromium, chromedriver, ``tricam serve`` and a plain static file server all run in a
fresh network namespace with only ``lo`` (tests/e2e/netns.py); tests/e2e/errors_inside.py drives
them and records, through a probe injected before app.js, every change of ``data-state`` and
``#status`` plus each getUserMedia call and WebSocket attempt. These tests read that history:

* camera refused (``--use-fake-ui-for-media-stream=deny``, verified on Chromium 156: the page's
  getUserMedia rejects with NotAllowedError) -> a message that names the camera and says how
  to fix it, and no retrying: one camera request, one WebSocket, and nothing more for 3 s;
* page served without a tricam server behind it -> "cannot reach the server" with retries
  whose gaps grow (app.js backs off 0.5, 1, 2, 4... s);
* the server is SIGKILLed mid-call and restarted on the same port 2 s later -> the page says
  the connection was lost, keeps trying, and is back by itself: connected, one session on the
  new server, the same camera (no second permission request) and edited (bronze) video.

Screenshots and logs stay in artifacts/e2e/errors-*.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e import netns
from tests.e2e.browser_inside import REPO
from tests.e2e.clips import make_clip
from tests.e2e.test_browser import _unavailable, blue_over_red

pytestmark = pytest.mark.browser
ARTIFACTS = REPO / "artifacts" / "e2e"


@pytest.fixture(scope="module")
def errors_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    reason = _unavailable()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("client-errors")
    clip = work / "camera.y4m"
    make_clip(clip, width=320, height=240, seconds=3.0, fps=25)
    out = work / "result.json"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    run = netns.run_isolated("tests.e2e.errors_inside", ["--y4m", str(clip), "--artifacts", str(ARTIFACTS)],
                             out=out, cwd=REPO, timeout=180)
    result, stderr = run.result, run.stderr
    result["wall_s"] = run.wall_s
    (ARTIFACTS / "errors-result.json").write_text(json.dumps(result, indent=2))
    assert result.get("ok"), f"client error run failed ({run.returncode}): {result.get('error')}\n" \
        f"{result.get('traceback', '')}\nstate: {result.get('failed_state')}\n" \
        f"probe: {result.get('failed_probe')}\nconsole: {result.get('console')}\nstderr: {stderr[-3000:]}"
    return result


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def test_camera_denied_says_how_to_fix_it_and_does_not_retry(errors_run: dict[str, Any]) -> None:
    probe = errors_run["denied_probe"]
    assert probe["gumErrors"][:1] == ["NotAllowedError"], probe  # the switch really refused the camera
    state, text = errors_run["denied_first"]
    assert state == "error", (state, text)
    low = text.lower()
    assert "camera" in low and ("denied" in low or "blocked" in low), text
    assert "allow the camera" in low and "connect" in low, text  # how to fix it
    assert "retrying" not in low and "server" not in low, text  # not mistaken for a network problem
    # Three seconds later: same state and message, one camera request and one WebSocket in all.
    assert errors_run["denied_later"] == [state, text]
    assert len(probe["gum"]) == 1 and len(probe["ws"]) == 1, probe
    assert probe["timeline"][-1][1:] == [state, text], probe["timeline"]
    assert [s for _, s, _ in probe["timeline"]].count("error") == 1, probe["timeline"]
    # The page hung up on the server instead of leaving a session open, and its controls with it.
    assert errors_run["denied_healthz"]["sessions"] == 0
    assert errors_run["denied_controls_disabled"] == [True, True]


def test_unreachable_server_is_reported_and_retried_with_backoff(errors_run: dict[str, Any]) -> None:
    probe = errors_run["unreachable_probe"]
    state, text = errors_run["unreachable_first"]
    assert state == "error"
    assert text.startswith("Cannot reach the tricam server at 127.0.0.1:"), text
    assert "Retrying in 0.5 s" in text, text
    later_state, later_text = errors_run["unreachable_later"]
    assert (later_state, later_text.split(" ")[0]) in {("error", "Cannot"), ("connecting", "Reconnecting")}, \
        errors_run["unreachable_later"]
    # Every error shown says the server cannot be reached; it never claims a connection.
    shown = [(s, t) for _, s, t in probe["timeline"]]
    assert all(s in ("idle", "connecting", "error") for s, _ in shown), shown
    assert all(t.startswith("Cannot reach the tricam server") for s, t in shown if s == "error"), shown
    # It keeps trying, and backs off: about 0.5, 1 and 2 s between the attempts in ~4 s.
    ws = probe["ws"]
    assert 3 <= len(ws) <= 5, ws
    g = gaps(ws)
    assert g[0] > 400 and all(b > 1.6 * a for a, b in zip(g, g[1:], strict=False)), g
    assert probe["gum"] == [], probe  # no camera before a server answers


def test_page_reports_a_lost_server_and_reconnects_by_itself(errors_run: dict[str, Any]) -> None:
    probe = errors_run["recovery_probe"]
    killed, restarted = errors_run["killed_at_ms"], errors_run["restarted_at_ms"]
    before = [(s, t) for at, s, t in probe["timeline"] if at < killed]
    after = [(at, s, t) for at, s, t in probe["timeline"] if at >= killed]
    assert before[-1] == ("connected", "Connected: your edited video is live."), before
    assert errors_run["call_first"]["width"] > 0
    # The drop is reported at once, then the page keeps trying while the server is down.
    assert errors_run["drop_first"][0] == "error"
    assert errors_run["drop_first"][1].startswith("Lost the connection to the server. Retrying in"), errors_run
    assert after[0][1:] == tuple(errors_run["drop_first"]) and after[0][0] - killed < 1000, after
    outage = [(s, t) for at, s, t in after if at < restarted]
    assert all(s in ("error", "connecting") for s, _ in outage), outage
    assert any(t.startswith("Cannot reach the tricam server") for _, t in outage), outage
    # Back by itself at its first attempt after the server returned (no button press exists here).
    assert after[-1][1:] == ("connected", "Connected: your edited video is live."), after
    assert after[-1][0] > restarted
    assert len([t for t in probe["ws"] if t > restarted]) <= 1, (probe["ws"], restarted)
    assert errors_run["reconnected_state"][0] == "connected"
    # The same camera stream carried on: one getUserMedia for the whole page, one session on the
    # new server, and its video is live and edited again.
    assert len(probe["gum"]) == 1, probe["gum"]
    assert errors_run["healthz_after"]["sessions"] == 1, errors_run["healthz_after"]
    assert errors_run["call_again"]["width"] > 0 and errors_run["call_again"]["time"] > 0.3
    after_bronze = errors_run["after_bronze"]
    assert after_bronze["style"] == "bronze" and "bronze_pixels" in errors_run["steps"], after_bronze
    assert blue_over_red(after_bronze["remote"]) < 0.55, after_bronze
    assert blue_over_red(after_bronze["local"]) > 0.6, after_bronze


def test_missing_token_is_explained_and_not_retried(errors_run: dict[str, Any]) -> None:
    state, text = errors_run["token_missing_first"]
    assert state == "error" and "needs an access token" in text and "?token=" in text, text
    assert errors_run["token_missing_later"] == [state, text]
    probe = errors_run["token_missing_probe"]
    assert len(probe["ws"]) == 1, probe["ws"]  # refused once; retrying cannot help
    assert probe["gum"] == [], probe  # no camera opened for a server that refused the page
    assert errors_run["token_call"]["width"] > 0  # with ?token= the same page connects


def test_failing_style_is_shown_and_the_call_goes_on(errors_run: dict[str, Any]) -> None:
    first, later = errors_run["failing_first"], errors_run["failing_later"]
    assert first["failing"] == "broken" and "failing" in first["badge"], first
    assert "could not run" in first["notice"] and "broken" in first["notice"], first
    # Not a reason to reconnect: still connected three seconds later, on the same websocket.
    assert later["state"] == "connected" and later["failing"] == "broken", later
    probe = errors_run["failing_probe"]
    assert len(probe["ws"]) == 1, probe["ws"]
    assert "error" not in [s for _, s, _ in probe["timeline"]], probe["timeline"]
    video = errors_run["failing_video"]
    assert video["time"] > 0.3 and blue_over_red(video) > 0.6, video  # the camera, passed through
    cleared = errors_run["failing_cleared"]
    assert cleared["failing"] == "" and cleared["notice"] == "" and "failing" not in cleared["badge"], cleared


def test_error_run_was_quick(errors_run: dict[str, Any]) -> None:
    assert errors_run["wall_s"] < 90, errors_run["steps"]
