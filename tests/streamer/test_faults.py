"""Faults injected into a real server with real aiortc callers on 127.0.0.1: what survives.

A style that raises, one that hangs past the deadline, the processor itself failing, the
peer gone mid-call, the websocket gone while the peer lives, a sink that fails (in
``tricam serve`` and in ``tricam cam``): each is reported once, the video falls back to
pass-through, and the session (or, for ``tricam cam``, a clear exit) goes on.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.api import Engine, RGBImage, Style, StyleContext, StyleInfo, StyleRegistry
from engine.styles.basic import Bronze, PassThrough
from streamer import cli
from streamer.session import SessionLimits
from tests.streamer.conftest import FakeSink, RecordingEngine, StartServer, is_bronze, is_plain, settle
from tests.streamer.fake_vcam import FakeCamera

pytestmark = pytest.mark.timeout(90)


class Broken(Style):
    info = StyleInfo(name="broken", description="Raises on every frame.")

    def apply(self, frame: RGBImage, ctx: StyleContext) -> RGBImage:
        raise RuntimeError("the model file is unreadable")


class Stuck(Style):
    """Blocks every frame until released, then turns the frame bronze-red."""

    info = StyleInfo(name="stuck", description="Hangs until released.")

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    def apply(self, frame: RGBImage, ctx: StyleContext) -> RGBImage:
        self.entered.set()
        if not self.release.wait(20.0):
            raise RuntimeError("never released")
        out = frame.copy()
        out[..., 0], out[..., 2] = 220, 20
        return out




async def test_a_style_that_raises_is_reported_once_and_frames_pass_through(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="streamer.pipeline")
    server = await start_server(Engine(StyleRegistry([PassThrough(), Bronze(), Broken()])))
    c = await server.connect()
    await c.call(160, 120)
    await c.wait_frames(3)
    start = len(c.messages)
    await c.request({"type": "set_style", "style": "broken"}, "state")
    err = await c.expect("error", start=start)
    assert (err["code"], err["style"], err["fatal"]) == ("style_failed", "broken", False)
    assert "the model file is unreadable" in err["message"]
    frames = await c.wait_frames(15)
    assert all(is_plain(f.mean_rgb) for f in frames)  # pass-through, never a frozen picture
    stats = await c.request({"type": "get_stats"}, "stats")
    assert stats["failing"] == "broken" and stats["errors"] >= 10
    # Logged once with its cause, told to the client once, not 30 times a second.
    assert sum("the model file is unreadable" in r.getMessage() for r in caplog.records) == 1
    assert sum(m.get("type") == "error" for m in c.messages[start:]) == 1
    # Another style works at once and clears the failing mark.
    await c.request({"type": "set_style", "style": "bronze"}, "state")
    frames = await c.wait_frames(6)
    assert is_bronze(frames[-1].mean_rgb)
    assert (await c.request({"type": "get_stats"}, "stats"))["failing"] is None
    assert not c.ws.closed and len(server.hub.sessions) == 1


async def test_a_style_that_hangs_past_the_deadline_passes_frames_through(start_server: StartServer) -> None:
    stuck = Stuck()
    server = await start_server(Engine(StyleRegistry([PassThrough(), stuck])),
                                limits=SessionLimits(frame_deadline_s=0.4))
    c = await server.connect()
    await c.call(160, 120)
    await c.wait_frames(3)
    start = len(c.messages)
    await c.request({"type": "set_style", "style": "stuck"}, "state")
    err = await c.expect("error", lambda m: m["code"] == "style_timeout", start=start, timeout=5.0)
    assert err["style"] == "stuck" and not err["fatal"] and "0.4 s" in err["message"]
    # While the engine is stuck the call keeps moving: camera frames pass through.
    frames = await c.wait_frames(10, timeout=5.0)
    assert all(is_plain(f.mean_rgb) for f in frames)
    assert (await c.request({"type": "get_stats"}, "stats"))["failing"] == "stuck"
    # Signalling stays live meanwhile.
    assert (await c.request({"type": "list_styles"}, "styles"))["current"] == "stuck"
    stuck.release.set()
    await settle(lambda: any(f.mean_rgb[0] > 180 and f.mean_rgb[2] < 60 for f in c.frames[-5:]), 10.0)
    await settle(lambda: server.hub.sessions and next(iter(server.hub.sessions.values())).pipeline.failing is None)


async def test_the_processor_survives_its_own_bug(start_server: StartServer) -> None:
    server = await start_server()
    c = await server.connect()
    await c.call(160, 120)
    await c.wait_frames(3)
    (session,) = server.hub.sessions.values()
    assert session._call is not None
    track = session._call.tracks[0]
    put = track._out.put
    failures = [0]

    def buggy_put(item: Any) -> bool:  # a bug between the engine and the encoder, 5 times
        if failures[0] < 5:
            failures[0] += 1
            raise ValueError("a bug in the frame path")
        return put(item)

    track._out.put = buggy_put  # type: ignore[method-assign]
    start = len(c.messages)
    err = await c.expect("error", start=start)
    assert err["code"] == "internal" and "a bug in the frame path" in err["message"] and not err["fatal"]
    await c.wait_frames(10)  # the processor task lived on
    assert failures[0] == 5
    await c.request({"type": "set_style", "style": "bronze"}, "state")
    await settle(lambda: is_bronze(c.frames[-1].mean_rgb))


async def test_peer_gone_mid_call_leaves_the_session_able_to_call_again(start_server: StartServer) -> None:
    engine = RecordingEngine()
    server = await start_server(engine)
    c = await server.connect()
    await c.call(160, 120)
    await c.wait_frames(5)
    (session,) = server.hub.sessions.values()
    await c.hangup()  # the browser's peer connection vanishes; the websocket stays
    await settle(lambda: session.pc is None or session.pc.connectionState in ("closed", "failed"), 40.0)
    assert (await c.request({"type": "get_stats"}, "stats"))["type"] == "stats"
    await c.request({"type": "set_style", "style": "bronze"}, "state")
    await c.call(160, 120)  # the page's reconnect: a new offer on the same websocket
    frames = await c.wait_frames(5)
    assert is_bronze(frames[-1].mean_rgb)
    assert len(server.hub.sessions) == 1 and engine.closed == []


async def test_websocket_gone_while_the_peer_lives_closes_the_call(start_server: StartServer) -> None:
    engine = RecordingEngine()
    sink = FakeSink()
    server = await start_server(engine, sinks=[sink])
    c = await server.connect()
    await c.call(160, 120)
    await c.wait_frames(5)
    (session,) = server.hub.sessions.values()
    server_pc = session.pc
    assert server_pc is not None
    await c.ws.close()  # only the websocket: the caller's peer connection is still up
    await settle(lambda: not server.hub.sessions)
    assert server_pc.connectionState == "closed"
    assert engine.closed == engine.opened and sink.ended == [session.id]
    # Nothing is sent on a call whose session ended: the caller sees its video stop.
    n = len(c.frames)
    await asyncio.sleep(0.5)
    assert len(c.frames) <= n + 2


class FailingSink(FakeSink):
    def submit(self, session_id: str, frame: np.ndarray, pts_s: float) -> None:
        super().submit(session_id, frame, pts_s)
        if len(self.frames) >= 3:
            raise OSError("the virtual camera device went away")


async def test_a_failing_sink_is_reported_and_dropped_while_the_call_goes_on(start_server: StartServer) -> None:
    sink = FailingSink()
    server = await start_server(sinks=[sink])
    c = await server.connect()
    await c.call(160, 120)
    err = await c.expect("error", lambda m: m["code"] == "sink_failed")
    assert "went away" in err["message"] and not err["fatal"]
    await c.wait_frames(10)
    assert len(sink.frames) == 3  # dropped after it failed: never called again
    await c.request({"type": "set_style", "style": "bronze"}, "state")
    await settle(lambda: is_bronze(c.frames[-1].mean_rgb))


# -- tricam cam: the same pipeline, a sink failure ends the command ---------------------------


def test_tricam_cam_exits_non_zero_when_the_virtual_camera_fails(
    fake_backend: None, clip: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    FakeCamera.send_fails_after = 10
    t0 = time.monotonic()
    rc = cli.main(["cam", "--input", str(clip), "--vcam", "--vcam-backend", "fake", "--vcam-size", "160x120",
                   "--vcam-fps", "30", "--seconds", "20", "--no-control"])
    assert rc == 1
    assert time.monotonic() - t0 < 10  # it stopped on the failure, not at --seconds
    assert "sends failed in a row" in caplog.text and "No such device" in caplog.text
    assert "tricam cam stops" in caplog.text


def test_tricam_cam_passes_frames_through_a_failing_style(
    fake_backend: None, clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine import registry

    real = registry.build_engine

    def with_broken(*a: Any, **k: Any) -> Engine:
        engine = real(*a, **k)
        engine.registry.register(Broken())
        return engine

    monkeypatch.setattr(registry, "build_engine", with_broken)
    rc = cli.main(["cam", "--input", str(clip), "--vcam", "--vcam-backend", "fake", "--vcam-size", "160x120",
                   "--style", "broken", "--frames", "10", "--no-control"])
    assert rc == 0
    frames = [f for f in FakeCamera.instances[-1].rgb_frames() if f.mean() > 30]
    r, _, b = np.mean([f.reshape(-1, 3).mean(0) for f in frames[-3:]], axis=0)
    assert b > r + 80  # the camera, unedited: never a frozen or black output
