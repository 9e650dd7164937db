"""Virtual camera sink against an in-memory pyvirtualcam backend (no device needed)."""

from __future__ import annotations

import asyncio
import glob
import platform
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from streamer.vcam import VcamError, VirtualCameraSink, convert_rgb, letterbox
from tests.streamer.fake_vcam import FakeCamera, register


@pytest.fixture(autouse=True)
def fake_backend() -> Iterator[None]:
    register()
    yield
    FakeCamera.reset()


def solid(w: int, h: int, rgb: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, dtype=np.uint8), (h, w, 3)).copy()


def gradient(w: int, h: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), 255 - x * 255 // (w - 1)], axis=-1).astype(np.uint8)


def wait_for(cond: object, timeout: float = 3.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if callable(cond) and cond():
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def shows(cam: FakeCamera, rgb: tuple[int, int, int]) -> bool:
    """The device's latest frame is entirely ``rgb``."""
    frames = cam.rgb_frames()
    return bool(frames) and bool((frames[-1] == rgb).all())


# -- pixel conversion ------------------------------------------------------------------


def bt601_reference(rgb8: np.ndarray, fmt: str) -> np.ndarray:
    """Plain numpy BT.601 limited range with libyuv's integer formulas and 2x2 / 2x1 chroma means."""
    rgb = rgb8.astype(np.int64)
    h, w = rgb.shape[:2]

    def yuv(c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r, g, b = c[..., 0], c[..., 1], c[..., 2]
        return (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16, ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128,
                ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128)

    y = yuv(rgb)[0]
    if fmt in ("I420", "NV12"):
        _, u, v = yuv((rgb.reshape(h // 2, 2, w // 2, 2, 3).sum(axis=(1, 3)) + 2) >> 2)
        chroma = np.concatenate([u.ravel(), v.ravel()]) if fmt == "I420" else np.stack([u, v], -1).ravel()
        return np.concatenate([y.ravel(), chroma])
    _, u, v = yuv((rgb.reshape(h, w // 2, 2, 3).sum(axis=2) + 1) >> 1)
    order = (y[:, 0::2], u, y[:, 1::2], v) if fmt == "YUYV" else (u, y[:, 0::2], v, y[:, 1::2])
    return np.stack(order, axis=-1).ravel()


def test_red_in_bt601_matches_libyuv_values() -> None:
    out = convert_rgb(solid(4, 2, (255, 0, 0)), "I420").astype(int)
    assert out.size == 4 * 2 * 3 // 2
    y, u, v = out[:8], out[8:10], out[10:12]
    # libyuv (what pyvirtualcam's own backends use) gives Y=82, U=90, V=240 for pure red.
    assert np.abs(y - 82).max() <= 1 and np.abs(u - 90).max() <= 1 and np.abs(v - 240).max() <= 1, out


@pytest.mark.parametrize("fmt", ["I420", "NV12", "YUYV", "UYVY"])
def test_yuv_layouts_agree_with_a_plain_reference(fmt: str) -> None:
    img = gradient(64, 48)
    ours = convert_rgb(img, fmt).astype(int).ravel()
    ref = bt601_reference(img, fmt)
    assert ours.shape == ref.shape == (64 * 48 * (3 if fmt in ("I420", "NV12") else 4) // 2,)
    diff = np.abs(ours - ref)
    assert diff.mean() < 1.5 and diff.max() <= 6, (diff.mean(), diff.max())
    # A swapped plane or byte order would be far off on this gradient: check the opposite layout too.
    other = {"I420": "NV12", "NV12": "I420", "YUYV": "UYVY", "UYVY": "YUYV"}[fmt]
    assert np.abs(ours - bt601_reference(img, other)).mean() > 10


def test_conversion_is_fast_enough_for_720p30() -> None:
    img = gradient(1280, 720)
    convert_rgb(img, "I420")
    t0 = time.perf_counter()
    for _ in range(5):
        convert_rgb(img, "I420")
    per_frame = (time.perf_counter() - t0) / 5
    assert per_frame < 0.03, per_frame  # leaves the 33 ms slot for letterboxing and the send


def test_rgb_family_and_shapes() -> None:
    img = gradient(6, 4)
    assert np.array_equal(convert_rgb(img, "RGB"), img)
    assert np.array_equal(convert_rgb(img, "BGR"), img[..., ::-1])
    rgba = convert_rgb(img, "RGBA")
    assert rgba.shape == (4, 6, 4) and np.array_equal(rgba[..., :3], img) and (rgba[..., 3] == 255).all()
    gray = convert_rgb(np.concatenate([solid(6, 2, (255, 255, 255)), solid(6, 2, (0, 0, 0))]), "GRAY")
    assert gray.shape == (4, 6) and gray[0, 0] > 200 and gray[3, 0] < 30
    with pytest.raises(ValueError, match="even"):
        convert_rgb(gradient(5, 4), "I420")
    with pytest.raises(ValueError, match="unsupported"):
        convert_rgb(img, "P010")


def test_letterbox_keeps_aspect_with_black_bars() -> None:
    wide = letterbox(solid(640, 480, (200, 100, 50)), 1280, 720)  # 4:3 into 16:9: bars left and right
    assert wide.shape == (720, 1280, 3)
    assert (wide[:, :160] == 0).all() and (wide[:, 1120:] == 0).all()
    assert (wide[:, 160:1120] == (200, 100, 50)).all()
    tall = letterbox(solid(400, 100, (10, 250, 10)), 640, 480)  # 4:1 into 4:3: bars top and bottom
    assert (tall[:160] == 0).all() and (tall[320:] == 0).all() and (tall[160:320] == (10, 250, 10)).all()
    same = gradient(64, 48)
    assert np.array_equal(letterbox(same, 64, 48), same)


# -- the sink ---------------------------------------------------------------------------


def test_frames_reach_the_device_letterboxed_in_rgb() -> None:
    with VirtualCameraSink(width=320, height=180, fps=60, backend="fake") as sink:
        cam = FakeCamera.instances[-1]
        assert (cam.width, cam.height, cam.fmt, sink.device) == (320, 180, "RGB", "/dev/fake0")
        wait_for(lambda: len(cam.rgb_frames()) > 0)  # before any input: the waiting card
        sink.submit("a", solid(240, 180, (255, 0, 0)), 0.0)
        wait_for(lambda: any((f[90, 160] == (255, 0, 0)).all() for f in cam.rgb_frames()))
    frames = cam.rgb_frames()
    first = frames[0]
    assert first.shape == (180, 320, 3)
    assert first.mean() < 40 and not (first == 0).all()  # the waiting card: dark, with text
    last = frames[-1]
    assert (last[:, :40] == 0).all() and (last[:, 280:] == 0).all() and (last[:, 40:280] == (255, 0, 0)).all()
    assert cam.closed == 1


def test_falls_back_to_a_pixel_format_the_device_takes() -> None:
    FakeCamera.accepted = {"I420"}
    with VirtualCameraSink(width=64, height=48, fps=60, backend="fake") as sink:
        assert sink.pixel_format == "I420"
        cam = FakeCamera.instances[-1]
        sink.submit("a", solid(64, 48, (255, 0, 0)), 0.0)
        wait_for(lambda: bool(cam.snapshot()[0]) and abs(int(cam.snapshot()[0][-1][0]) - 82) <= 1)
    frames, _ = cam.snapshot()
    assert frames[-1].size == 64 * 48 * 3 // 2


def test_output_is_paced_at_the_fixed_rate() -> None:
    with VirtualCameraSink(width=64, height=48, fps=30, backend="fake"):
        cam = FakeCamera.instances[-1]
        time.sleep(1.05)
    _, times = cam.snapshot()
    window = [t for t in times if t - times[0] <= 1.0]
    assert 27 <= len(window) <= 32, len(window)  # 31 sends fit in a closed 1 s window at 30 fps
    gaps = np.diff(times)
    assert abs(float(np.median(gaps)) - 1 / 30) < 0.006, np.median(gaps)


def test_stalled_input_repeats_the_last_frame() -> None:
    with VirtualCameraSink(width=64, height=48, fps=50, backend="fake") as sink:
        cam = FakeCamera.instances[-1]
        sink.submit("a", solid(64, 48, (0, 0, 255)), 0.0)
        wait_for(lambda: any((f == (0, 0, 255)).all() for f in cam.rgb_frames()))
        n0 = len(cam.rgb_frames())
        time.sleep(0.4)  # no input at all: the camera must keep delivering
        stats = sink.stats()
    frames = cam.rgb_frames()
    assert len(frames) - n0 >= 12
    start = next(i for i, f in enumerate(frames) if (f == (0, 0, 255)).all())
    assert all((f == (0, 0, 255)).all() for f in frames[start:])
    assert stats["repeats"] >= 12 and stats["submitted"] == 1


def test_follows_first_session_then_the_next() -> None:
    red, blue, green = solid(64, 48, (255, 0, 0)), solid(64, 48, (0, 0, 255)), solid(64, 48, (0, 255, 0))
    with VirtualCameraSink(width=64, height=48, fps=60, backend="fake") as sink:
        cam = FakeCamera.instances[-1]
        sink.submit("a", red, 0.0)
        sink.submit("b", blue, 0.0)
        assert sink.following == "a"
        wait_for(lambda: shows(cam, (255, 0, 0)))
        time.sleep(0.1)
        assert not any((f == (0, 0, 255)).all() for f in cam.rgb_frames())
        sink.session_closed("a")
        assert sink.following == "b"
        time.sleep(0.05)
        assert shows(cam, (255, 0, 0))  # held until b's next frame
        sink.submit("b", blue, 0.04)
        wait_for(lambda: shows(cam, (0, 0, 255)))
        sink.session_closed("b")
        assert sink.following is None
        sink.submit("c", green, 0.0)  # a newcomer is picked up
        wait_for(lambda: shows(cam, (0, 255, 0)))


def test_pinned_session_ignores_others() -> None:
    with VirtualCameraSink(width=64, height=48, fps=60, backend="fake", session="b") as sink:
        cam = FakeCamera.instances[-1]
        sink.submit("a", solid(64, 48, (255, 0, 0)), 0.0)
        time.sleep(0.1)
        assert sink.following is None and sink.stats()["submitted"] == 0
        sink.submit("b", solid(64, 48, (0, 255, 0)), 0.0)
        wait_for(lambda: shows(cam, (0, 255, 0)))


def test_submit_never_waits_for_the_sender() -> None:
    with VirtualCameraSink(width=1280, height=720, fps=30, backend="fake") as sink:
        img = gradient(640, 480)
        t0 = time.perf_counter()
        for i in range(100):
            sink.submit("a", img, i / 30)
        per_call = (time.perf_counter() - t0) / 100
        stats = sink.stats()
    assert per_call < 0.005, per_call  # a copy of 640x480, no waiting on the 30 fps sender
    assert stats["submitted"] == 100 and stats["dropped"] >= 90


def test_close_is_idempotent_and_releases_the_device() -> None:
    sink = VirtualCameraSink(width=64, height=48, fps=60, backend="fake")
    sink.start()
    cam = FakeCamera.instances[-1]
    thread = sink._thread
    assert thread is not None and thread.is_alive()
    sink.close()
    sink.close()
    assert not thread.is_alive() and cam.closed == 1
    n = len(cam.snapshot()[0])
    sink.submit("a", solid(64, 48, (1, 2, 3)), 0.0)
    time.sleep(0.05)
    assert len(cam.snapshot()[0]) == n
    assert not any(t.name == "vcam-sender" for t in threading.enumerate())
    with pytest.raises(VcamError, match="closed"):
        sink.start()


# -- errors a person can act on ----------------------------------------------------------


def test_device_error_names_the_fix() -> None:
    FakeCamera.fail_with = "Device /dev/video10 does not exist."
    sink = VirtualCameraSink(width=64, height=48, fps=30, backend="fake", device="/dev/video10")
    with pytest.raises(VcamError) as info:
        sink.start()
    msg = str(info.value)
    assert "/dev/video10 does not exist" in msg
    hint = "modprobe v4l2loopback" if platform.system() == "Linux" else "OBS"
    assert hint in msg
    sink.close()  # nothing was opened; still fine


def test_unknown_backend_lists_what_exists() -> None:
    with pytest.raises(VcamError, match=r"'nosuch' is not available.*fake"):
        VirtualCameraSink(backend="nosuch").start()


def test_no_backend_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    import pyvirtualcam

    monkeypatch.setattr(pyvirtualcam.camera, "BACKENDS", {})
    with pytest.raises(VcamError, match="no virtual camera backend"):
        VirtualCameraSink().start()


def test_missing_pyvirtualcam(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyvirtualcam", None)
    with pytest.raises(VcamError, match="pip install pyvirtualcam"):
        VirtualCameraSink().start()


@pytest.mark.skipif(platform.system() != "Linux", reason="v4l2loopback is Linux-only")
def test_real_v4l2loopback_backend_without_a_device_says_how_to_load_it() -> None:
    if glob.glob("/dev/video*"):
        pytest.skip("this machine has video devices; the missing-device path cannot be shown")
    with pytest.raises(VcamError) as info:
        VirtualCameraSink(backend="v4l2loopback").start()
    assert "No v4l2 loopback device" in str(info.value) and "exclusive_caps=1" in str(info.value)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        VirtualCameraSink(width=641, height=480)
    with pytest.raises(ValueError):
        VirtualCameraSink(fps=0)
    with pytest.raises(ValueError):
        VirtualCameraSink(pixel_format="P010")


# -- with the live server: a WebRTC call's edited frames reach the virtual camera ----------------


async def test_live_server_call_feeds_the_virtual_camera(start_server: Any) -> None:
    sink = VirtualCameraSink(width=320, height=180, fps=30, backend="fake")
    sink.start()
    cam = FakeCamera.instances[-1]
    server = await start_server(sinks=[sink])
    caller = await server.connect()
    await caller.expect("hello")
    await caller.request({"type": "set_style", "style": "bronze"}, "state")
    await caller.call(320, 240)
    await caller.wait_frames(10)
    await asyncio.sleep(0.2)
    frames = cam.rgb_frames()
    content = frames[-1][:, 40:280]  # 4:3 inside 16:9: bars of 40 px each side
    r, g, b = content.reshape(-1, 3).mean(axis=0)
    assert r > g > b and b < 0.5 * r, (r, g, b)  # the caller sends a blue pattern; bronze came out
    assert (frames[-1][:, :38] == 0).all() and (frames[-1][:, 282:] == 0).all()
    assert sink.following is not None
    await caller.close()
    await asyncio.sleep(0.3)
    assert sink.following is None  # the session ended: holding its last frame
    n = len(cam.rgb_frames())
    await asyncio.sleep(0.2)
    assert len(cam.rgb_frames()) >= n + 4  # and the camera keeps delivering
