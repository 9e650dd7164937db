"""A real server on 127.0.0.1 and a real aiortc caller, both on the test's event loop.

ICE is restricted to 127.0.0.1 on both sides (and no STUN server is configured), so every
packet of every call stays on loopback.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import pytest
from aiohttp import web
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from engine.api import Engine, EngineSession, StyleRegistry
from engine.styles.basic import Bronze, PassThrough
from streamer import ice
from streamer.server import create_app
from streamer.session import HUB_KEY, Hub

LOOPBACK = "127.0.0.1"


def pattern_image(width: int, height: int, phase: int = 0) -> np.ndarray:
    """A bluish moving gradient: clearly not bronze (blue dominates red everywhere)."""
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = (20 + 40 * x * y).astype(np.uint8) + np.zeros((height, 1), np.uint8)
    img[..., 1] = (60 + 100 * ((x + phase / 30.0) % 1.0)) * np.ones((height, 1), np.float32)
    img[..., 2] = (150 + 100 * y) * np.ones((1, width), np.float32)
    return img


class PatternTrack(MediaStreamTrack):
    """A camera stand-in: ``fps`` frames a second of :func:`pattern_image` (or a still ``image``)."""

    kind = "video"

    def __init__(self, width: int, height: int, fps: float = 30.0, image: np.ndarray | None = None) -> None:
        super().__init__()
        self.size = (width, height)
        self.fps = fps
        self.sent = 0
        images = [pattern_image(width, height, i) for i in range(4)] if image is None else [image]
        self._frames = [av.VideoFrame.from_ndarray(np.ascontiguousarray(im), format="rgb24") for im in images]
        self._start: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        target = self._start + self.sent / self.fps
        await asyncio.sleep(max(0.0, target - time.monotonic()))
        frame = self._frames[self.sent % len(self._frames)]
        frame.pts = int(self.sent * 90000 / self.fps)
        frame.time_base = Fraction(1, 90000)
        self.sent += 1
        return frame


@dataclass
class Received:
    t: float
    width: int
    height: int
    mean_rgb: np.ndarray


def is_bronze(mean_rgb: np.ndarray) -> bool:
    r, _, b = mean_rgb
    return bool(r > b + 40)


def is_plain(mean_rgb: np.ndarray) -> bool:
    r, _, b = mean_rgb
    return bool(b > r + 60)


@dataclass
class Caller:
    """One browser stand-in: a websocket plus (after :meth:`call`) an aiortc peer."""

    ws: aiohttp.ClientWebSocketResponse
    http: aiohttp.ClientSession
    messages: list[dict[str, Any]] = field(default_factory=list)
    frames: list[Received] = field(default_factory=list)
    pc: RTCPeerConnection | None = None
    track: PatternTrack | None = None
    _new: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        self._tasks.append(asyncio.ensure_future(self._read_ws()))

    async def _read_ws(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.messages.append(json.loads(msg.data))
                self._new.set()
        self._new.set()

    async def send(self, obj: Any) -> None:
        await self.ws.send_str(obj if isinstance(obj, str) else json.dumps(obj))

    async def expect(
        self, type_: str, pred: Callable[[dict[str, Any]], bool] = lambda m: True, timeout: float = 5.0, start: int = 0
    ) -> dict[str, Any]:
        """The first message of ``type_`` at index ≥ ``start`` matching ``pred``."""
        deadline = time.monotonic() + timeout
        seen = start
        while True:
            for m in self.messages[seen:]:
                if m.get("type") == type_ and pred(m):
                    return m
            seen = max(seen, len(self.messages))
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {type_!r} message within {timeout}s; got {self.messages[start:]}")
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), left)
            except TimeoutError:
                pass

    async def request(self, obj: dict[str, Any], reply: str, timeout: float = 5.0) -> dict[str, Any]:
        start = len(self.messages)
        await self.send(obj)
        return await self.expect(reply, timeout=timeout, start=start)

    async def call(
        self, width: int = 320, height: int = 240, fps: float = 30.0, timeout: float = 10.0,
        image: np.ndarray | None = None,
    ) -> None:
        """Send an offer with a camera track and connect; received frames land in ``frames``."""
        await self.hangup()
        self.frames = []
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc = pc
        self.track = PatternTrack(width, height, fps, image)
        pc.addTransceiver(self.track, direction="sendrecv")

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._tasks.append(asyncio.ensure_future(self._read_video(track)))

        offer = await pc.createOffer()
        with ice.host_addresses([LOOPBACK]):
            await pc.setLocalDescription(offer)
        reply = await self.request({"type": "offer", "sdp": pc.localDescription.sdp}, "answer", timeout)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="answer"))

    async def _read_video(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.VideoFrame)
                rgb = frame.to_ndarray(format="rgb24")
                step = max(1, min(rgb.shape[0], rgb.shape[1]) // 64)
                mean = rgb[::step, ::step].reshape(-1, 3).mean(axis=0)
                self.frames.append(Received(time.monotonic(), frame.width, frame.height, mean))
        except MediaStreamError:
            pass

    async def wait_frames(self, n: int, timeout: float = 10.0) -> list[Received]:
        """Wait until ``n`` more frames than now have arrived; returns those frames."""
        start = len(self.frames)
        deadline = time.monotonic() + timeout
        while len(self.frames) < start + n:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(self.frames) - start} of {n} frames within {timeout}s")
            await asyncio.sleep(0.02)
        return self.frames[start:]

    async def hangup(self) -> None:
        if self.pc is not None:
            await self.pc.close()
            self.pc = None

    async def close(self) -> None:
        await self.hangup()
        await self.ws.close()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


def basic_engine() -> Engine:
    """The real engine seam with the two model-free styles (independent of what else gets registered)."""
    return Engine(StyleRegistry([PassThrough(), Bronze()]))


class RecordingEngine(Engine):
    """The real engine, remembering the sessions it opened (to check they get closed)."""

    def __init__(self) -> None:
        super().__init__(basic_engine().registry)
        self.opened: list[EngineSession] = []
        self.closed: list[EngineSession] = []

    def open_session(self) -> EngineSession:
        engine = self

        class _Session(EngineSession):
            def close(self) -> None:
                super().close()
                engine.closed.append(self)

        s = _Session(self.registry, self.tracker_factory)
        self.opened.append(s)
        return s


class FakeSink:
    def __init__(self) -> None:
        self.frames: list[tuple[str, tuple[int, ...], float]] = []
        self.ended: list[str] = []
        self.closed = 0

    def submit(self, session_id: str, frame: np.ndarray, pts_s: float) -> None:
        self.frames.append((session_id, frame.shape, pts_s))

    def session_closed(self, session_id: str) -> None:
        self.ended.append(session_id)

    def close(self) -> None:
        self.closed += 1


@dataclass
class Server:
    app: web.Application
    runner: web.AppRunner
    url: str
    http: aiohttp.ClientSession
    callers: list[Caller] = field(default_factory=list)

    @property
    def hub(self) -> Hub:
        return self.app[HUB_KEY]

    async def connect(self) -> Caller:
        ws = await self.http.ws_connect(self.url + "/ws", max_msg_size=0)
        caller = Caller(ws, self.http)
        caller.start()
        self.callers.append(caller)
        return caller


StartServer = Callable[..., Any]


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    """``await start_server(**create_app_kwargs)`` → a running :class:`Server` on 127.0.0.1."""
    servers: list[Server] = []

    async def start(engine: Engine | None = None, **kwargs: Any) -> Server:
        kwargs.setdefault("ice_hosts", [LOOPBACK])
        app = create_app(engine or basic_engine(), **kwargs)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, LOOPBACK, 0)
        await site.start()
        port = runner.addresses[0][1]
        server = Server(app, runner, f"http://{LOOPBACK}:{port}", aiohttp.ClientSession())
        servers.append(server)
        return server

    yield start
    for s in servers:
        for c in s.callers:
            await c.close()
        await s.runner.cleanup()
        await s.http.close()


async def settle(cond: Callable[[], Any], timeout: float = 5.0) -> None:
    """Wait until ``cond()`` is true (polling the loop), or fail the test."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


class FakeTarget:
    """A ``StyleTarget`` that remembers what it was told; ``broken`` makes its stats not JSON."""

    def __init__(self) -> None:
        self.choice = ("none", 0.0)
        self.calls: list[tuple[str, float]] = []
        self.broken = False

    def set_style(self, style: str, intensity: float) -> None:
        self.calls.append((style, intensity))
        self.choice = (style, intensity)

    def current(self) -> tuple[str, float]:
        return self.choice

    def stats(self) -> dict[str, Any]:
        if self.broken:
            return {"fps_in": float("nan")}
        return {"fps_in": 30.0, "fps_out": 29.0, "frames_out": 42, "style": self.choice[0],
                "intensity": self.choice[1]}


@pytest.fixture
def fake_backend() -> Iterator[None]:
    """pyvirtualcam's in-memory ``fake`` backend (tests/streamer/fake_vcam.py), reset after."""
    from tests.streamer.fake_vcam import FakeCamera, register

    register()
    yield
    FakeCamera.reset()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 s of the synthetic blue scene at 25 fps (blue well above red in every frame)."""
    from tests.e2e.clips import make_clip

    path = tmp_path_factory.mktemp("clips") / "blue.mp4"
    make_clip(path, width=160, height=120, seconds=2.0, fps=25, real=False)
    return path

