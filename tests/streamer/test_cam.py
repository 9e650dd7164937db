"""``tricam cam``: capture → engine → virtual camera, and the page as a remote control."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from engine.registry import build_engine
from streamer import cli
from streamer.cam import CamPipeline, ControlServer, check_display
from streamer.capture import CaptureError, FrameSource, resolve
from streamer.vcam import VirtualCameraSink
from tests.e2e.clips import TALKING_HEAD
from tests.streamer.fake_vcam import FakeCamera

pytestmark = pytest.mark.usefixtures("fake_backend")


def mean_rgb(frames: list[np.ndarray]) -> np.ndarray:
    return np.mean([f.reshape(-1, 3).mean(axis=0) for f in frames], axis=0)


def looks_bronze(rgb: np.ndarray) -> bool:
    r, g, b = rgb
    return bool(r > g > b and b < 0.5 * r)


# -- capture -------------------------------------------------------------------------------


def test_resolve_inputs() -> None:
    assert resolve("0", "Linux").url == "/dev/video0" and resolve("0", "Linux").format == "v4l2"
    assert resolve("1", "Darwin").format == "avfoundation"
    assert resolve("/dev/video3", "Linux").format == "v4l2"
    assert resolve("video=Integrated Camera", "Windows").format == "dshow"
    assert resolve("clip.mp4", "Linux").is_file
    with pytest.raises(CaptureError, match="by name"):
        resolve("0", "Windows")


def test_file_loops_with_increasing_timestamps(clip: Path) -> None:
    with FrameSource(str(clip), realtime=False) as src:
        times: list[float] = []
        while len(times) < 80:  # the clip has 50 frames: this crosses the loop point
            got = src.get(timeout=5.0)
            assert got is not None, src.error
            frame, pts = got
            assert frame.shape == (120, 160, 3)
            times.append(pts)
    assert all(b > a for a, b in zip(times, times[1:], strict=False)), times
    assert times[-1] > 2.0


def test_slow_consumer_gets_the_newest_frame(clip: Path) -> None:
    with FrameSource(str(clip), realtime=False) as src:
        first = src.get(timeout=5.0)
        assert first is not None
        time.sleep(0.3)  # the reader keeps decoding; only the newest frame is kept
        second = src.get(timeout=5.0)
        assert second is not None
        assert second[1] - first[1] > 5 / 25
        assert src.dropped > 0


def test_file_plays_at_its_own_rate(clip: Path) -> None:
    with FrameSource(str(clip)) as src:
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < 0.8:
            if src.get(timeout=1.0) is not None:
                n += 1
    assert 15 <= n <= 23, n  # 25 fps for 0.8 s


def test_capture_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="does not exist"):
        FrameSource(str(tmp_path / "missing.mp4")).start()
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(CaptureError, match="cannot open video file"):
        FrameSource(str(junk)).start()
    with pytest.raises(CaptureError, match="is not a file"):
        FrameSource(str(tmp_path)).start()
    if not Path("/dev/video77").exists():
        with pytest.raises(CaptureError, match="/dev/video77 does not exist"):
            FrameSource("/dev/video77").start()


# -- the command end to end, with the fake virtual camera ---------------------------------------


def test_tricam_cam_file_to_virtual_camera_in_bronze(clip: Path) -> None:
    t0 = time.monotonic()
    rc = cli.main(["cam", "--input", str(clip), "--vcam", "--vcam-backend", "fake", "--vcam-size", "320x240",
                   "--vcam-fps", "30", "--style", "bronze", "--frames", "30", "--no-control"])
    elapsed = time.monotonic() - t0
    assert rc == 0
    cam = FakeCamera.instances[-1]
    assert cam.closed == 1 and (cam.width, cam.height) == (320, 240)
    frames = cam.rgb_frames()
    assert len(frames) >= 25, len(frames)  # ~1.2 s of 30 fps output
    content = [f[:, 0:320] for f in frames if f.mean() > 30]  # skip the dark waiting card
    assert content
    # 160x120 is 4:3 like 320x240: no bars, the whole frame is the edited video.
    assert looks_bronze(mean_rgb(content[-5:])), mean_rgb(content[-5:])
    assert elapsed < 10


def test_tricam_cam_none_keeps_colours(clip: Path) -> None:
    assert cli.main(["cam", "--input", str(clip), "--vcam", "--vcam-backend", "fake", "--vcam-size", "160x120",
                     "--frames", "10", "--no-control"]) == 0
    frames = [f for f in FakeCamera.instances[-1].rgb_frames() if f.mean() > 30]
    r, _, b = mean_rgb(frames[-3:])
    assert b > r + 80  # the blue scene passes through unchanged


def test_tricam_cam_errors(tmp_path: Path, caplog: pytest.LogCaptureFixture, clip: Path) -> None:
    caplog.set_level(logging.ERROR)
    assert cli.main(["cam", "--input", str(tmp_path / "nope.mp4"), "--no-control"]) == 1
    assert "does not exist" in caplog.text
    assert cli.main(["cam", "--input", str(clip), "--style", "marble", "--no-control"]) == 2
    assert "unknown style 'marble'" in caplog.text
    FakeCamera.fail_with = "Device /dev/video10 does not exist."
    assert cli.main(["cam", "--input", str(clip), "--vcam", "--vcam-backend", "fake", "--no-control"]) == 1
    assert "/dev/video10 does not exist" in caplog.text and "v4l2loopback" in caplog.text


def test_preview_without_a_display_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import platform

    if platform.system() != "Linux":
        pytest.skip("the display check is Linux-specific")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(RuntimeError, match="needs a display"):
        check_display()


@pytest.mark.media
def test_real_talking_head_through_bronze(tmp_path: Path) -> None:
    if not TALKING_HEAD.is_file():
        pytest.skip(f"{TALKING_HEAD} is absent (shared media folder not present)")
    engine = build_engine()
    with FrameSource(str(TALKING_HEAD), realtime=False) as src:
        got = src.get(timeout=5.0)
        assert got is not None
        pipe = CamPipeline(engine, src, style="bronze")
        out = pipe.process(*got)
        pipe.stop()
    before, after = got[0].reshape(-1, 3).mean(0), out.reshape(-1, 3).mean(0)
    assert not looks_bronze(before) and looks_bronze(after), (before, after)


# -- control mode: the page (here a websocket client) drives the pipeline ----------------------


async def test_websocket_switches_the_style_live(clip: Path) -> None:
    engine = build_engine()
    sink = VirtualCameraSink(width=160, height=120, fps=30, backend="fake")
    sink.start()
    src = FrameSource(str(clip))
    src.start()
    pipe = CamPipeline(engine, src, [sink])
    server = ControlServer(pipe, engine, "127.0.0.1", 0)
    server.start()
    pipe.start()
    cam = FakeCamera.instances[-1]
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(server.url + "ws") as ws:

            async def expect(type_: str, timeout: float = 5.0) -> dict[str, Any]:
                while True:
                    msg = json.loads((await asyncio.wait_for(ws.receive(), timeout)).data)
                    if msg["type"] == type_:
                        return msg

            hello = await expect("hello")
            assert hello["mode"] == "control"
            await ws.send_str(json.dumps({"type": "offer", "sdp": "v=0"}))
            assert (await expect("error"))["code"] == "bad_message"  # no call to offer here

            await asyncio.sleep(0.3)
            plain = [f for f in cam.rgb_frames()[-3:] if f.mean() > 30]
            assert plain and not looks_bronze(mean_rgb(plain))

            await ws.send_str(json.dumps({"type": "set_style", "style": "bronze", "intensity": 1.0}))
            state = await expect("state")
            assert (state["style"], state["intensity"]) == ("bronze", 1.0)
            assert pipe.current() == ("bronze", 1.0)
            await asyncio.sleep(0.3)  # a few frames later the camera shows the new style
            assert looks_bronze(mean_rgb(cam.rgb_frames()[-3:]))

            await ws.send_str(json.dumps({"type": "get_stats"}))
            stats = await expect("stats")
            assert stats["style"] == "bronze" and stats["frames_out"] > 10 and stats["fps_out"] > 10

            await ws.send_str(json.dumps({"type": "set_style", "style": "marble"}))
            assert (await expect("error"))["code"] == "unknown_style"
    finally:
        server.close()
        pipe.stop()
        src.close()
        sink.close()
