"""Glass-to-glass benchmark of the live loop against a bare aiortc relay, on loopback.

A loopback aiortc client sends 640×480 at 30 fps with each frame's number stamped into
its pixels (two rows of 16 big black/white blocks: the number's bits and their
complement, so a misread is detected rather than mis-timed). It reads the numbers back from
the returned video, which gives per-frame latency from "frame handed to the client's
encoder" to "edited frame decoded by the client". The same client runs, in one
invocation, against (1) a bare relay server that returns the received track unchanged
(aiortc ``MediaRelay``) and (2) ``tricam serve``'s app, each in its own subprocess so
psutil can measure the server's CPU and memory.

    python scripts/bench_live.py --seconds 60                 # style none
    python scripts/bench_live.py --seconds 60 --filter-ms 100 # a test style that sleeps 100 ms/frame

The sleeping style is registered through the engine seam (``StyleRegistry.register``) in
the server subprocess; the server code is unchanged. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LOOPBACK = "127.0.0.1"
BITS = 16
BLOCK = 40  # 16 blocks × 40 px = 640 px: one row of bits, one of complements
SLEEP_STYLE = "bench-sleep"

log = logging.getLogger("bench_live")


# --- frame stamping ----------------------------------------------------------------------


def make_backgrounds(width: int, height: int, count: int) -> list[np.ndarray]:
    """``count`` yuv420p frames (as PyAV's (H·3/2, W) arrays) of moving textured content."""
    rng = np.random.default_rng(1)
    texture = rng.integers(40, 200, (height // 8 + 2, width // 8 + 2), dtype=np.uint8)
    texture = np.kron(texture, np.ones((8, 8), np.uint8))  # blocky: encoders have real work
    yy, xx = np.mgrid[0:height, 0:width]
    frames = []
    for i in range(count):
        dx, dy = (3 * i) % 8, (2 * i) % 8
        y = texture[dy : dy + height, dx : dx + width].astype(np.int16)
        y = np.clip(y + (40 * np.sin((xx + 12 * i) / 37.0)).astype(np.int16), 16, 235).astype(np.uint8)
        u = np.full((height // 2, width // 2), 110 + (i % 30), np.uint8)
        v = np.full((height // 2, width // 2), 140, np.uint8)
        frames.append(np.concatenate([y, u.reshape(-1, width), v.reshape(-1, width)]))
    return frames


def stamp(yuv: np.ndarray, number: int, width: int, height: int) -> np.ndarray:
    out = yuv.copy()
    for bit in range(BITS):
        on = (number >> bit) & 1
        x = bit * BLOCK
        out[0:BLOCK, x : x + BLOCK] = 235 if on else 16
        out[BLOCK : 2 * BLOCK, x : x + BLOCK] = 16 if on else 235
    # Neutral chroma under the blocks so colour styles do not shift their luma.
    u0 = height
    for row in range(BLOCK):  # U and V planes are (H/2, W/2) stored as (H/4, W) rows
        for plane_start in (u0, u0 + height // 4):
            r = plane_start + row // 2
            half = 0 if row % 2 == 0 else width // 2
            out[r, half : half + width // 2] = 128
    return out


def read_stamp(y_plane: np.ndarray) -> int | None:
    """The number stamped by :func:`stamp`, or None when the blocks do not agree."""
    c0, c1 = BLOCK // 4, 3 * BLOCK // 4
    number = 0
    for bit in range(BITS):
        x = bit * BLOCK
        a = y_plane[c0:c1, x + c0 : x + c1].mean() > 125
        b = y_plane[BLOCK + c0 : BLOCK + c1, x + c0 : x + c1].mean() > 125
        if a == b:
            return None
        number |= int(a) << bit
    return number


# --- client --------------------------------------------------------------------------------


async def run_client(url: str, seconds: float, warmup: float, fps: float, style: str | None,
                     server_pid: int) -> dict[str, Any]:
    import aiohttp
    import av
    import psutil
    from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamError

    from streamer import ice

    width, height = 640, 480
    backgrounds = make_backgrounds(width, height, 30)
    sent_at: dict[int, float] = {}
    recv_at: dict[int, float] = {}
    unreadable = 0

    class StampedCamera(MediaStreamTrack):
        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self.n = 0
            self.t0: float | None = None

        async def recv(self) -> av.VideoFrame:
            if self.t0 is None:
                self.t0 = time.monotonic()
            await asyncio.sleep(max(0.0, self.t0 + self.n / fps - time.monotonic()))
            arr = stamp(backgrounds[self.n % len(backgrounds)], self.n, width, height)
            frame = av.VideoFrame.from_ndarray(arr, format="yuv420p")
            frame.pts = int(self.n * 90000 / fps)
            frame.time_base = Fraction(1, 90000)
            sent_at[self.n] = time.monotonic()
            self.n += 1
            return frame

    async def read_back(track: MediaStreamTrack) -> None:
        nonlocal unreadable
        try:
            while True:
                frame = await track.recv()
                now = time.monotonic()
                assert isinstance(frame, av.VideoFrame)
                y = frame.to_ndarray(format="gray")[: 2 * BLOCK]
                n = read_stamp(y)
                if n is None:
                    unreadable += 1
                elif n not in recv_at:
                    recv_at[n] = now
        except MediaStreamError:
            pass

    proc = psutil.Process(server_pid)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(url)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        camera = StampedCamera()
        pc.addTransceiver(camera, direction="sendrecv")
        readers: list[asyncio.Task[None]] = []
        pc.on("track", lambda t: readers.append(asyncio.ensure_future(read_back(t))))

        # Keep reading the websocket for the whole run, as a browser does: aiohttp answers the
        # server's heartbeat pings only while someone reads, and pushed stats pile up otherwise.
        inbox: list[dict[str, Any]] = []
        arrived = asyncio.Event()

        async def read_ws() -> None:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    inbox.append(json.loads(msg.data))
                    arrived.set()

        readers.append(asyncio.ensure_future(read_ws()))

        async def reply(kind: str, request_id: Any = None) -> dict[str, Any]:
            deadline = time.monotonic() + 20
            while True:
                for i, msg in enumerate(inbox):
                    if msg.get("type") == "error":
                        raise RuntimeError(f"server error: {msg}")
                    if msg.get("type") == kind and msg.get("id") == request_id:
                        del inbox[: i + 1]
                        return msg
                arrived.clear()
                await asyncio.wait_for(arrived.wait(), max(0.01, deadline - time.monotonic()))

        if style is not None:
            await ws.send_json({"type": "set_style", "style": style})
            await reply("state")
        offer = await pc.createOffer()
        with ice.host_addresses([LOOPBACK]):
            await pc.setLocalDescription(offer)
        await ws.send_json({"type": "offer", "sdp": pc.localDescription.sdp})
        answer = await reply("answer")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))

        await asyncio.sleep(warmup)
        first_n = camera.n
        t_start = time.monotonic()
        cpu_start = proc.cpu_times()
        rss_start = proc.memory_info().rss
        await asyncio.sleep(seconds)
        t_end = time.monotonic()
        cpu_end = proc.cpu_times()
        rss_end = proc.memory_info().rss
        last_n = camera.n
        server_stats = None
        if style is not None:  # only tricam speaks the full protocol
            try:
                await ws.send_json({"type": "get_stats", "id": "final"})
                server_stats = await asyncio.wait_for(reply("stats", "final"), 5)
            except (RuntimeError, TimeoutError, ValueError):
                server_stats = None
        await asyncio.sleep(1.0)  # let the last frames of the window come back
        await pc.close()
        await ws.close()
        for r in readers:
            r.cancel()

    window = [n for n in range(first_n, last_n) if n in sent_at]
    got = [n for n in window if n in recv_at]
    lat = [(recv_at[n] - sent_at[n]) * 1000.0 for n in got]
    fifth = max(1, len(lat) // 5)
    # Build-up shows as a trend: medians per fifth and a least-squares slope over send time.
    fifths = [round(statistics.median(lat[i * fifth:(i + 1) * fifth]), 1) for i in range(5) if lat[i * fifth:(i + 1) * fifth]]
    slope = None
    if len(got) > 10:
        t_min = (np.array([sent_at[n] for n in got]) - sent_at[got[0]]) / 60.0
        slope = round(float(np.polyfit(t_min, np.array(lat), 1)[0]), 2)
    wall = t_end - t_start
    cpu = (cpu_end.user - cpu_start.user) + (cpu_end.system - cpu_start.system)

    def pct(q: float) -> float | None:
        return round(float(np.percentile(lat, q)), 1) if lat else None

    out: dict[str, Any] = {
        "frames_sent": len(window),
        "frames_received": len(got),
        "frames_dropped": len(window) - len(got),
        "unreadable_frames": unreadable,
        "received_fps": round(len(got) / wall, 2),
        "latency_p50_ms": pct(50),
        "latency_p95_ms": pct(95),
        "latency_first_fifth_median_ms": round(statistics.median(lat[:fifth]), 1) if lat else None,
        "latency_last_fifth_median_ms": round(statistics.median(lat[-fifth:]), 1) if lat else None,
        "latency_fifths_median_ms": fifths,
        "latency_slope_ms_per_min": slope,
        "server_cpu_percent_of_one_core": round(100.0 * cpu / wall, 1),
        "server_rss_start_mb": round(rss_start / 2**20, 1),
        "server_rss_end_mb": round(rss_end / 2**20, 1),
    }
    if server_stats is not None:
        out["server_reported"] = {k: server_stats.get(k) for k in
                                  ("dropped", "frames_in", "frames_out", "engine_ms", "latency_ms", "style")}
    return out


# --- servers (subprocesses) ----------------------------------------------------------------


def child_tricam(port: int, filter_ms: float) -> None:
    from engine.api import RGBImage, Style, StyleContext, StyleInfo
    from engine.registry import build_engine
    from streamer.server import create_app, serve

    class Sleep(Style):
        """A stand-in for a slow model: returns the frame unchanged after ``filter_ms``."""

        info = StyleInfo(name=SLEEP_STYLE, description=f"sleeps {filter_ms} ms per frame (benchmark)")

        def apply(self, frame: RGBImage, ctx: StyleContext) -> RGBImage:
            time.sleep(filter_ms / 1000.0)
            return frame

    engine = build_engine()
    engine.registry.register(Sleep())
    app = create_app(engine, client_dir=None, ice_hosts=[LOOPBACK], max_sessions=2)
    serve(app, LOOPBACK, port)


def child_relay(port: int) -> None:
    from aiohttp import WSMsgType, web
    from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.contrib.media import MediaRelay

    from streamer import ice
    from streamer.server import serve

    relay = MediaRelay()
    pcs: set[RTCPeerConnection] = set()

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            if data.get("type") != "offer":
                continue
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pcs.add(pc)

            def on_track(track: MediaStreamTrack, pc: RTCPeerConnection = pc) -> None:
                pc.addTrack(relay.subscribe(track, buffered=False))

            pc.on("track", on_track)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=data["sdp"], type="offer"))
            with ice.host_addresses([LOOPBACK]):
                await pc.setLocalDescription(await pc.createAnswer())
            await ws.send_json({"type": "answer", "sdp": pc.localDescription.sdp})
        for pc in list(pcs):
            await pc.close()
        return ws

    async def on_shutdown(app: web.Application) -> None:
        for pc in list(pcs):
            await pc.close()

    app = web.Application()
    app.router.add_get("/ws", handle)
    app.on_shutdown.append(on_shutdown)
    serve(app, LOOPBACK, port)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def measure(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    cmd = [sys.executable, __file__, "--child", kind, "--port", str(port), "--filter-ms", str(args.filter_ms)]
    env = {**os.environ, "TRICAM_LOG": "WARNING", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env)
    try:
        import urllib.request

        deadline = time.monotonic() + 60
        while True:  # wait until the server accepts connections
            try:
                with socket.create_connection((LOOPBACK, port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{kind} server did not start") from None
                time.sleep(0.2)
        if kind == "tricam":
            with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/healthz", timeout=5) as r:
                json.load(r)
        style = None
        if kind == "tricam":
            style = SLEEP_STYLE if args.filter_ms > 0 else args.style
        return asyncio.run(run_client(f"ws://{LOOPBACK}:{port}/ws", args.seconds, args.warmup, args.fps,
                                      style, proc.pid))
    finally:
        proc.terminate()  # SIGTERM: the server's graceful shutdown
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="measured seconds per server (default 60)")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring (default 3)")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--style", default="none", help="tricam style when --filter-ms is 0 (default none)")
    ap.add_argument("--filter-ms", type=float, default=0.0,
                    help="use a test style that sleeps this long per frame instead of --style")
    ap.add_argument("--child", choices=["tricam", "relay"], help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    logging.basicConfig(level=os.environ.get("TRICAM_LOG", "WARNING"))
    if args.child == "tricam":
        child_tricam(args.port, args.filter_ms)
        return 0
    if args.child == "relay":
        child_relay(args.port)
        return 0

    relay = measure("relay", args)
    tricam = measure("tricam", args)
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "config": {"size": "640x480", "fps": args.fps, "seconds": args.seconds, "warmup": args.warmup,
                   "style": SLEEP_STYLE if args.filter_ms > 0 else args.style, "filter_ms": args.filter_ms},
        "relay": relay,
        "tricam": tricam,
    }
    p50_r, p50_t = relay["latency_p50_ms"], tricam["latency_p50_ms"]
    if p50_r and p50_t:
        result["tricam_p50_over_relay"] = round(p50_t / p50_r, 3)
        result["tricam_p95_minus_relay_p95_ms"] = round(tricam["latency_p95_ms"] - relay["latency_p95_ms"], 1)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
