"""Load and soak benchmark of ``tricam serve`` on loopback: N concurrent calls, or one long call.

Method. ``tricam serve`` runs in a subprocess, started through the command's own entry point
(``streamer.cli``) with ``--max-sessions N --ice-host 127.0.0.1`` (and a per-address session
cap of N where the server has one), so every option, limit and check is the command's. One
client process opens N calls to it, each with its own websocket session and aiortc peer
connection, ICE restricted to 127.0.0.1 on both sides, so no packet leaves loopback. Each
call selects the style with ``set_style``, sends 640×480 video at 30 fps with every frame's
number stamped into its top 80 rows (the stamp of ``scripts/bench_live.py``) and reads the
numbers back from the returned video: per-frame glass-to-glass latency from "frame handed
to the client's encoder" to "edited frame decoded by the client". The video is the shared
talking-head clip when present (so face-aware styles track a real face), else a texture.

The client shares the CPU with the server and encodes and decodes every call itself. Its
fake camera skips frames its encoder cannot take, as a real camera does
(``frames_skipped_by_client``), and its event-loop lag is watched; ``client.limited`` says
when the figures describe the client more than the server.

In the server process a sampler coroutine, added to the server's own loop by wrapping
``streamer.server.serve_app``, appends a JSON line every ``--sample`` seconds: asyncio task
count, RSS, open fds, inet sockets, threads, CPU % and event-loop lag; the client reads that
file. psutil on the server pid gives the CPU and RSS of the measured window, and the
server's own ``stats`` pushes (one a second per session, docs/protocol.md) are kept per call.

``--soak`` runs one call for ten minutes; each sampler row is joined with the call's latency
and received fps over the interval ending at that row. Per metric it fits a least-squares
line (units per minute) to the rows after a warm-up (the first minute, or a quarter of
shorter runs) and judges it flat by the rule printed in the JSON.

    python scripts/bench_load.py --calls 8 --seconds 60                  # 8 calls, style none
    python scripts/bench_load.py --calls 8 --seconds 60 --style pose     # the face-aware style
    python scripts/bench_load.py --soak --plot soak.png                  # 1 call, 600 s, 10 s rows
    python scripts/bench_load.py --soak --seconds 40 --sample 10         # a short soak

Prints one JSON object on stdout; logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.bench_live import BITS, BLOCK, LOOPBACK, free_port, make_backgrounds, read_stamp, stamp  # noqa: E402

if TYPE_CHECKING:
    import aiohttp
    import av
    from aiortc import RTCPeerConnection

log = logging.getLogger("bench_load")

TALKING_HEAD = ROOT.parent / "shared" / "media" / "v01_talking_male.mp4"
SERVER_CHILD = "_server"  # argv[1] that makes this file the server wrapper
MAX_FRAME_NUMBER = 2**BITS


# --- server side: the wrapper subprocess ----------------------------------------------------


async def sample_server(path: Path, every_s: float, stop: asyncio.Event) -> None:
    """Append one JSON line of this process's resource use every ``every_s`` seconds.

    Runs on the server's own loop, so ``tasks`` counts the server's asyncio tasks. Sets
    ``stop`` when the parent process is gone, so an orphaned server does not linger.
    """
    import psutil

    me = psutil.Process()
    parent = os.getppid()
    last_t, last_cpu = time.monotonic(), sum(me.cpu_times()[:2])
    due = last_t
    with path.open("a", buffering=1) as f:
        while not stop.is_set():
            now = time.monotonic()
            cpu = sum(me.cpu_times()[:2])
            row = {
                "t": now,
                "tasks": len(asyncio.all_tasks()),
                "rss_mb": round(me.memory_info().rss / 2**20, 2),
                "fds": me.num_fds(),
                "sockets": len(me.net_connections(kind="inet")),
                "threads": me.num_threads(),
                "cpu_pct": round(100.0 * (cpu - last_cpu) / (now - last_t), 1) if now > last_t else None,
                # How late this coroutine woke up: a busy event loop shows here first.
                "loop_lag_ms": round(max(0.0, now - due) * 1000.0, 1),
            }
            f.write(json.dumps(row) + "\n")
            last_t, last_cpu = now, cpu
            due += every_s
            if os.getppid() != parent:
                stop.set()
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, due - time.monotonic()))


def server_child(argv: Sequence[str]) -> int:
    """``tricam serve ARGS`` as the command runs it, plus :func:`sample_server` on its loop.

    ``argv``: ``--samples-file PATH --sample-every S -- ARGS``.
    """
    import streamer.server as server
    from streamer.cli import main as tricam

    split = list(argv).index("--")
    parser = argparse.ArgumentParser(prog=f"bench_load.py {SERVER_CHILD}")
    parser.add_argument("--samples-file", type=Path, required=True)
    parser.add_argument("--sample-every", type=float, default=10.0)
    ns = parser.parse_args(argv[:split])
    serve_app = server.serve_app

    async def serve_app_sampled(app: Any, host: str, port: int, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        sampler = asyncio.ensure_future(sample_server(ns.samples_file, ns.sample_every, stop))
        try:
            await serve_app(app, host, port, stop)
        finally:
            stop.set()
            await sampler

    # The only change to the command: server.serve() looks serve_app up when called, so the
    # sampler joins the server's own loop while every option, limit and check stays the command's.
    server.serve_app = serve_app_sampled
    return tricam(["serve", *argv[split + 1 :]])


def serve_arguments(port: int, max_sessions: int, workers: int | None, device: str) -> list[str]:
    """``tricam serve`` arguments: loopback only, room for every call from our one address."""
    from streamer.server import add_arguments

    args = ["--host", LOOPBACK, "--port", str(port), "--ice-host", LOOPBACK,
            "--max-sessions", str(max_sessions), "--device", device]
    if workers is not None:
        args += ["--workers", str(workers)]
    # All calls come from 127.0.0.1: lift the per-address cap, where this server version has one.
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    per_address = ["--max-sessions-per-address", str(max_sessions)]
    if not parser.parse_known_args(per_address)[1]:
        args += per_address
    return args


@dataclass
class ServerHandle:
    url: str
    pid: int
    samples_path: Path
    styles: list[str]
    max_sessions: int
    sample_s: float
    workers: int | None


@contextlib.contextmanager
def tricam_server(max_sessions: int, sample_s: float, workers: int | None = None,
                  device: str = "cpu") -> Iterator[ServerHandle]:
    """The server wrapper in a subprocess on a free loopback port; always stopped and cleaned up."""
    with tempfile.TemporaryDirectory(prefix="bench_load-") as tmp:
        samples = Path(tmp) / "server-samples.jsonl"
        port = free_port()
        cmd = [sys.executable, str(Path(__file__).resolve()), SERVER_CHILD, "--samples-file", str(samples),
               "--sample-every", str(sample_s), "--", *serve_arguments(port, max_sessions, workers, device)]
        env = {k: v for k, v in os.environ.items() if k != "TRICAM_TOKEN"}  # loopback needs no token
        env.update(TRICAM_LOG=os.environ.get("TRICAM_LOG", "WARNING"), PYTHONPATH=str(ROOT))
        # stdout goes to our stderr: our stdout carries only the JSON result.
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=2)
        try:
            health = _wait_healthy(f"http://{LOOPBACK}:{port}/healthz", proc)
            if not samples.exists():  # its first row is written before the server can answer
                raise RuntimeError("the server runs without the sampler: does streamer.server.serve "
                                   "still call serve_app?")
            yield ServerHandle(f"ws://{LOOPBACK}:{port}/ws", proc.pid, samples, list(health["styles"]),
                               max_sessions, sample_s, workers)
        finally:
            stop_process(proc)


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                health: dict[str, Any] = json.load(r)
                return health
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with status {proc.returncode} before answering") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer {url} within {timeout_s:.0f} s") from None
            time.sleep(0.25)


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = 15.0) -> None:
    """SIGTERM (the server's graceful shutdown), then SIGKILL if it has not exited in ``grace_s``."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        log.warning("server %d ignored SIGTERM for %.0f s; killing it", proc.pid, grace_s)
        proc.kill()
        proc.wait()


def read_samples(path: Path) -> list[dict[str, Any]]:
    """Complete lines of the sampler's file (a line being written is left for the next read)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.split("\n")[:-1] if line]


# --- client side: one call ------------------------------------------------------------------


@functools.lru_cache(maxsize=2)  # decoding the clip takes a second or two; runs in one process share it
def load_source(source: str, width: int, height: int, count: int = 150) -> tuple[list[np.ndarray], str]:
    """yuv420p frames (PyAV's (H·3/2, W) layout) to loop, and their origin; treat them as read-only.

    ``talking-head`` is the shared clip (a real face, so face-aware styles track it), fitted
    below the stamp rows on grey; ``synthetic`` is bench_live's moving texture.
    """
    if source == "auto":
        source = "talking-head" if TALKING_HEAD.is_file() else "synthetic"
    if source == "synthetic":
        return make_backgrounds(width, height, 30), "synthetic"
    import av

    if not TALKING_HEAD.is_file():
        raise FileNotFoundError(f"--source talking-head needs {TALKING_HEAD}")
    band = 2 * BLOCK  # the stamp's rows: keep the face clear of them
    frames: list[np.ndarray] = []
    with av.open(str(TALKING_HEAD)) as container:
        for frame in container.decode(video=0):
            scale = min(width / frame.width, (height - band) / frame.height)
            w, h = int(frame.width * scale) // 2 * 2, int(frame.height * scale) // 2 * 2
            rgb = np.full((height, width, 3), 96, np.uint8)
            x, y = (width - w) // 2 // 2 * 2, band + (height - band - h) // 2 // 2 * 2
            rgb[y : y + h, x : x + w] = frame.reformat(width=w, height=h, format="rgb24").to_ndarray()
            frames.append(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray())
            if len(frames) >= count:
                break
    if not frames:
        raise RuntimeError(f"no frames decoded from {TALKING_HEAD}")
    return frames, "talking-head"


def stamp_rows(frame: av.VideoFrame) -> np.ndarray:
    """The luma rows holding the stamp, without converting the whole frame."""
    if frame.format.name in ("yuv420p", "yuvj420p"):
        plane = frame.planes[0]
        rows = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
        return rows[: 2 * BLOCK, : frame.width]
    return frame.to_ndarray(format="gray")[: 2 * BLOCK]


@dataclass
class CallLog:
    """What one call saw, on the shared monotonic clock (the server's samples use it too)."""

    index: int
    fps: float
    session: str | None = None
    t0: float | None = None  # when the camera's frame 0 was due
    sent_at: dict[int, float] = field(default_factory=dict)
    recv_at: dict[int, float] = field(default_factory=dict)
    misread_at: list[float] = field(default_factory=list)
    stats: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    errors: list[tuple[float, str]] = field(default_factory=list)
    """(time, code) of every ``error`` the server sent, e.g. ``style_timeout`` under load."""


class Call:
    """One caller: a websocket session and an aiortc peer sending stamped frames."""

    def __init__(self, index: int, frames: list[np.ndarray], size: tuple[int, int], fps: float) -> None:
        self.log = CallLog(index, fps)
        self.frames = frames
        self.size = size
        self.first_frame = asyncio.Event()
        self.pc: RTCPeerConnection | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._inbox: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def connect(self, http: aiohttp.ClientSession, url: str, style: str) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        from streamer import ice

        self._ws = await http.ws_connect(url, max_msg_size=0)
        self._tasks.append(asyncio.ensure_future(self._read_ws()))
        self.log.session = (await self._reply("hello"))["session"]
        await self._ws.send_json({"type": "set_style", "style": style, "id": "style"})
        await self._reply("state", "style")
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver(self._camera(), direction="sendrecv")
        self.pc.on("track", lambda track: self._tasks.append(asyncio.ensure_future(self._read_video(track))))
        offer = await self.pc.createOffer()
        with ice.host_addresses([LOOPBACK]):
            await self.pc.setLocalDescription(offer)
        await self._ws.send_json({"type": "offer", "sdp": self.pc.localDescription.sdp, "id": "offer"})
        answer = await self._reply("answer", "offer")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))

    def _camera(self) -> Any:
        import av
        from aiortc import MediaStreamTrack
        from aiortc.mediastreams import MediaStreamError

        call, frames, (width, height) = self.log, self.frames, self.size
        period = max(1, 2 * len(frames) - 2)  # play the clip forwards then backwards: no jump

        class StampedCamera(MediaStreamTrack):
            kind = "video"

            def __init__(self) -> None:
                super().__init__()
                self.next = 0

            async def recv(self) -> av.VideoFrame:
                if self.readyState != "live":
                    raise MediaStreamError
                now = time.monotonic()
                if call.t0 is None:
                    call.t0 = now
                due = call.t0 + self.next / call.fps
                if now < due:
                    await asyncio.sleep(due - now)
                else:  # the encoder came late: a camera does not wait, it has moved on
                    self.next = max(self.next, int((now - call.t0) * call.fps))
                n = self.next
                self.next += 1
                k = n % period
                image = frames[k if k < len(frames) else period - k]
                frame = av.VideoFrame.from_ndarray(stamp(image, n % MAX_FRAME_NUMBER, width, height),
                                                   format="yuv420p")
                frame.pts = int(n * 90000 / call.fps)
                frame.time_base = Fraction(1, 90000)
                call.sent_at[n] = time.monotonic()
                return frame

        return StampedCamera()

    async def _read_video(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                now = time.monotonic()
                n = read_stamp(stamp_rows(frame))
                if n is None:
                    self.log.misread_at.append(now)
                    continue
                self.log.recv_at.setdefault(n, now)
                self.first_frame.set()

    async def _read_ws(self) -> None:
        import aiohttp

        # Read for the whole call, as a browser does: aiohttp answers the server's heartbeat
        # pings only while someone reads.
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if data.get("type") == "error":
                self.log.errors.append((time.monotonic(), str(data.get("code"))))
            if data.get("type") == "stats" and data.get("id") is None:
                self.log.stats.append((time.monotonic(), data))
            else:
                self._inbox.append(data)
                self._arrived.set()
        self._arrived.set()

    async def _reply(self, kind: str, request_id: Any = None, timeout_s: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            for i, msg in enumerate(self._inbox):
                # A fatal error (busy, bad_sdp) or the answer to this request; others (a style
                # failing on a frame) are only counted.
                if msg.get("type") == "error" and (msg.get("fatal") or msg.get("id") == request_id):
                    raise RuntimeError(f"call {self.log.index}: server error {msg}")
                if msg.get("type") == kind and msg.get("id") == request_id:
                    del self._inbox[: i + 1]
                    return msg
            if self._ws is None or self._ws.closed:
                raise RuntimeError(f"call {self.log.index}: websocket closed while waiting for {kind!r}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"call {self.log.index}: no {kind!r} within {timeout_s:.0f} s")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)

    async def close(self) -> None:
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):
                await self._ws.send_json({"type": "bye"})
        if self.pc is not None:
            await self.pc.close()
        if self._ws is not None:
            await self._ws.close()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# --- figures ----------------------------------------------------------------------------------


def _r(x: float | None, nd: int = 1) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), nd)


def _median(xs: Sequence[float]) -> float | None:
    return _r(float(np.median(xs))) if len(xs) else None


def window_figures(calls: Sequence[CallLog], a: float, b: float) -> dict[str, Any]:
    """Frames pooled over ``calls`` whose camera slot fell in [a, b): counts, fps per call, latency."""
    sent = received = skipped = misread = 0
    errors: dict[str, int] = {}
    lat: list[float] = []
    for c in calls:
        if c.t0 is None:
            continue
        first, last = math.ceil((a - c.t0) * c.fps), math.ceil((b - c.t0) * c.fps)
        for n in range(max(0, first), last):
            if n not in c.sent_at:
                skipped += 1
                continue
            sent += 1
            if n in c.recv_at:
                received += 1
                lat.append((c.recv_at[n] - c.sent_at[n]) * 1000.0)
        misread += sum(1 for t in c.misread_at if a <= t < b)
        for t, code in c.errors:
            if a <= t < b:
                errors[code] = errors.get(code, 0) + 1
    seconds = max(b - a, 1e-9) * max(1, len(calls))

    def pct(q: float) -> float | None:
        return _r(float(np.percentile(lat, q))) if lat else None

    return {
        "frames_sent": sent,
        "frames_received": received,
        "frames_lost": sent - received,
        "frames_misread": misread,
        "frames_skipped_by_client": skipped,
        "sent_fps": _r(sent / seconds, 2),
        "received_fps": _r(received / seconds, 2),
        "latency_p50_ms": pct(50),
        "latency_p95_ms": pct(95),
        "latency_max_ms": _r(max(lat)) if lat else None,
        "server_errors": errors,
    }


def server_reported(calls: Sequence[CallLog], a: float, b: float) -> dict[str, Any]:
    """The server's own pushed ``stats`` in [a, b): medians of its per-second figures."""
    msgs = [m for c in calls for t, m in c.stats if a <= t < b]

    def med(key: str) -> float | None:
        return _median([float(m[key]) for m in msgs if m.get(key) is not None])

    last = msgs[-1] if msgs else {}
    return {
        "pushes": len(msgs),
        "fps_in_median": med("fps_in"),
        "fps_out_median": med("fps_out"),
        "latency_ms_median": med("latency_ms"),
        "latency_ms_max": _r(max((float(m["latency_ms"]) for m in msgs if m.get("latency_ms") is not None),
                                 default=math.nan)),
        "engine_ms_median": med("engine_ms"),
        "faces_median": med("faces"),
        "dropped_total": last.get("dropped"),
        "frames_in_total": last.get("frames_in"),
        "frames_out_total": last.get("frames_out"),
        "style": last.get("style"),
        "errors_total": last.get("errors"),  # frame-path failures; absent from older servers
        "failing": last.get("failing"),
    }


FLAT_RULE = {
    "fit": "least squares over sampler rows with t_s >= warmup_excluded_s - 0.5; slope in units per minute",
    "rss_mb": "|slope| < 1.0 MB/min",
    "counts (fds, sockets, threads, tasks)": "|slope| * fit_minutes < max(2, 5% of mean)",
    "latency_p50_ms": "|slope| * fit_minutes < max(5 ms, 10% of mean)",
    "received_fps": "|slope| * fit_minutes < max(1 fps, 5% of mean)",
}
TREND_METRICS = ("rss_mb", "fds", "sockets", "threads", "tasks", "latency_p50_ms", "received_fps")


def trends(rows: Sequence[dict[str, Any]], skip_s: float) -> dict[str, Any]:
    """Per metric: slope per minute after ``skip_s``, change over the fit relative to the mean, verdict."""
    slopes: dict[str, float | None] = {}
    change: dict[str, float | None] = {}
    flat: dict[str, bool | None] = {}
    points: dict[str, int] = {}
    for key in TREND_METRICS:
        # 0.5 s of slack: a row due exactly at the end of the warm-up belongs to the fit.
        pts = [(r["t_s"] / 60.0, float(r[key])) for r in rows if r["t_s"] >= skip_s - 0.5 and r.get(key) is not None]
        points[key] = len(pts)
        name = f"{key}_per_min"
        if len(pts) < 2 or pts[-1][0] <= pts[0][0]:
            slopes[name] = change[key] = flat[key] = None
            continue
        t, y = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
        slope = float(np.polyfit(t, y, 1)[0])
        span = float(t[-1] - t[0])
        mean = float(y.mean())
        drift = abs(slope) * span
        if key == "rss_mb":
            ok = abs(slope) < 1.0
        elif key == "latency_p50_ms":
            ok = drift < max(5.0, 0.10 * abs(mean))
        elif key == "received_fps":
            ok = drift < max(1.0, 0.05 * abs(mean))
        else:
            ok = drift < max(2.0, 0.05 * abs(mean))
        slopes[name] = round(slope, 4) + 0.0  # + 0.0 turns -0.0 into 0.0
        change[key] = round(slope * span / mean, 4) + 0.0 if mean else None
        flat[key] = bool(ok)
    verdicts = [v for v in flat.values() if v is not None]
    return {
        "warmup_excluded_s": skip_s,
        "points": points,
        "slopes": slopes,
        "relative_change": change,
        "flat": flat,
        "all_flat": bool(verdicts) and all(verdicts),
        "rule": FLAT_RULE,
    }


# --- runs ---------------------------------------------------------------------------------------


@dataclass
class Config:
    calls: int = 8
    style: str = "none"
    seconds: float = 30.0
    warmup: float = 5.0
    size: tuple[int, int] = (640, 480)
    fps: float = 30.0
    source: str = "auto"
    sample_s: float = 10.0
    workers: int | None = None
    device: str = "cpu"
    soak: bool = False
    fit_skip_s: float | None = None
    """Soak warm-up left out of the fits (default: 60 s, or a quarter of a shorter run)."""

    def check(self) -> None:
        w, h = self.size
        if w < BITS * BLOCK or h < 4 * BLOCK or w % 2 or h % 2:
            raise ValueError(f"--size must be even and at least {BITS * BLOCK}x{4 * BLOCK} (the stamp), got {w}x{h}")
        if self.calls < 1 or self.seconds <= 0 or self.fps <= 0 or self.sample_s <= 0:
            raise ValueError("--calls, --seconds, --fps and --sample must be positive")
        if (self.warmup + self.seconds + 30) * self.fps >= MAX_FRAME_NUMBER:
            raise ValueError(f"the stamp holds {BITS} bits: keep (warmup + seconds) * fps under {MAX_FRAME_NUMBER}")


def _machine() -> dict[str, Any]:
    # The load average says whether others shared the CPU during the run (this machine is shared).
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "loadavg_1min_start": round(os.getloadavg()[0], 2)}


async def _open_calls(cfg: Config, server: ServerHandle, http: aiohttp.ClientSession,
                      calls: list[Call]) -> None:
    try:
        async with asyncio.TaskGroup() as tg:
            for c in calls:
                tg.create_task(c.connect(http, server.url, cfg.style))
        async with asyncio.timeout(60):
            await asyncio.gather(*(c.first_frame.wait() for c in calls))
    except ExceptionGroup as group:  # a TaskGroup's failure: report the first cause plainly
        raise group.exceptions[0] from None


async def _settle(calls: Sequence[Call], t_end: float, max_s: float = 2.0) -> None:
    """Wait for the window's frames still in flight: until every call has decoded a frame sent
    after ``t_end`` (all before it have then arrived or are lost), or ``max_s`` has passed."""
    deadline = time.monotonic() + max_s
    while time.monotonic() < deadline:
        if all(any(c.log.sent_at.get(n, 0.0) > t_end for n in list(c.log.recv_at)[-3:]) for c in calls):
            return
        await asyncio.sleep(0.05)


async def _watch_loop_lag(out: list[tuple[float, float]], every_s: float = 0.1) -> None:
    """(time, ms late) of a 100 ms sleep, for ever: a starved client loop delays every call."""
    while True:
        t = time.monotonic()
        await asyncio.sleep(every_s)
        now = time.monotonic()
        out.append((now, (now - t - every_s) * 1000.0))


def _psutil_snapshot(proc: Any) -> dict[str, Any]:
    return {"t": time.monotonic(), "cpu": proc.cpu_times(), "rss": proc.memory_info().rss,
            "fds": proc.num_fds(), "threads": proc.num_threads()}


async def _drive(cfg: Config, server: ServerHandle) -> dict[str, Any]:
    import aiohttp
    import psutil

    machine = _machine()
    frames, source = load_source(cfg.source, *cfg.size)
    calls = [Call(i, frames, cfg.size, cfg.fps) for i in range(cfg.calls)]
    sproc, me = psutil.Process(server.pid), psutil.Process()
    lags: list[tuple[float, float]] = []
    lag_task = asyncio.ensure_future(_watch_loop_lag(lags))
    async with aiohttp.ClientSession() as http:
        try:
            log.info("opening %d call(s), style %s, source %s", cfg.calls, cfg.style, source)
            await _open_calls(cfg, server, http, calls)
            log.info("all calls flowing; warm-up %.0f s", cfg.warmup)
            await asyncio.sleep(cfg.warmup)
            if cfg.soak:
                rows, t_start, t_end, s0, s1, c0, c1 = await _soak_rows(cfg, server, calls, sproc, me)
            else:
                s0, c0 = _psutil_snapshot(sproc), me.cpu_times()
                t_start = s0["t"]
                log.info("measuring %.0f s", cfg.seconds)
                await asyncio.sleep(cfg.seconds)
                s1, c1 = _psutil_snapshot(sproc), me.cpu_times()
                t_end = s1["t"]
                rows = []
            await _settle(calls, t_end)
        finally:
            lag_task.cancel()
            await asyncio.gather(lag_task, *(c.close() for c in calls), return_exceptions=True)

    wall = t_end - t_start
    lag = [ms for t, ms in lags if t_start <= t < t_end]
    per_call = []
    for c in calls:
        fig = window_figures([c.log], t_start, t_end)
        per_call.append({"call": c.log.index, "session": c.log.session, **fig,
                         "server_reported": server_reported([c.log], t_start, t_end)})
    fps = [p["received_fps"] for p in per_call]
    p50 = [p["latency_p50_ms"] for p in per_call if p["latency_p50_ms"] is not None]
    p95 = [p["latency_p95_ms"] for p in per_call if p["latency_p95_ms"] is not None]
    samples = [s for s in read_samples(server.samples_path) if t_start - server.sample_s <= s["t"] <= t_end + 1]

    def cpu_pct(a: Any, b: Any) -> float | None:
        return _r(100.0 * ((b.user - a.user) + (b.system - a.system)) / wall)

    out: dict[str, Any] = {
        "mode": "soak" if cfg.soak else "load",
        "machine": machine,
        "config": {"calls": cfg.calls, "style": cfg.style, "seconds": cfg.seconds, "measured_s": round(wall, 2),
                   "warmup_s": cfg.warmup, "size": f"{cfg.size[0]}x{cfg.size[1]}", "fps": cfg.fps,
                   "source": source, "sample_s": server.sample_s, "max_sessions": server.max_sessions,
                   "workers": server.workers, "device": cfg.device, "server_styles": server.styles},
        "summary": {
            "received_fps_min": min(fps), "received_fps_mean": _r(float(np.mean(fps)), 2),
            "latency_p50_ms_median_of_calls": _median(p50),
            "latency_p95_ms_max_of_calls": max(p95) if p95 else None,
            "frames_skipped_by_client": sum(p["frames_skipped_by_client"] for p in per_call),
            "frames_misread": sum(p["frames_misread"] for p in per_call),
        },
        "calls": per_call,
        "server": {
            "pid": server.pid,
            "cpu_percent_of_one_core": cpu_pct(s0["cpu"], s1["cpu"]),
            "rss_start_mb": _r(s0["rss"] / 2**20), "rss_end_mb": _r(s1["rss"] / 2**20),
            "fds_start": s0["fds"], "fds_end": s1["fds"],
            "threads_start": s0["threads"], "threads_end": s1["threads"],
            "samples": [{**s, "t_s": round(s["t"] - t_start, 2)} for s in samples],
        },
        "client": {"cpu_percent_of_one_core": cpu_pct(c0, c1),
                   "loop_lag_ms_p50": _median(lag), "loop_lag_ms_max": _r(max(lag)) if lag else None,
                   "note": "the client encodes and decodes every call on the same CPU as the server"},
    }
    due = sum(p["frames_sent"] + p["frames_skipped_by_client"] for p in per_call)
    # The figures describe the server only while the client keeps up with its own camera.
    out["client"]["limited"] = bool(out["summary"]["frames_skipped_by_client"] > 0.05 * due
                                    or (out["client"]["loop_lag_ms_p50"] or 0.0) > 20.0)
    out["client"]["limited_rule"] = "client skipped > 5% of its camera frames, or its loop lag p50 > 20 ms"
    out["machine"]["loadavg_1min_end"] = round(os.getloadavg()[0], 2)
    if cfg.soak:
        skip = cfg.fit_skip_s if cfg.fit_skip_s is not None else min(60.0, cfg.seconds / 4)
        out["soak"] = {"rows": rows, **trends(rows, skip)}
    return out


async def _soak_rows(cfg: Config, server: ServerHandle, calls: list[Call], sproc: Any,
                     me: Any) -> tuple[list[dict[str, Any]], float, float, Any, Any, Any, Any]:
    """Rows at the server sampler's own instants: its figures plus the call's over the interval."""
    logs = [c.log for c in calls]
    patience = 3 * server.sample_s + 15

    async def next_sample(after: float) -> dict[str, Any]:
        deadline = time.monotonic() + patience
        while True:
            later = [s for s in read_samples(server.samples_path) if s["t"] > after]
            if later:
                return later[0]
            if time.monotonic() > deadline or not sproc.is_running():
                raise RuntimeError(f"no server sample within {patience:.0f} s")
            await asyncio.sleep(0.2)

    first = await next_sample(time.monotonic())
    s0, c0 = _psutil_snapshot(sproc), me.cpu_times()
    t_start = first["t"]
    rows = [{"t_s": 0.0, **_sample_fields(first)}]
    log.info("soak: %.0f s, a row every %.0f s", cfg.seconds, server.sample_s)
    prev = first
    while prev["t"] - t_start < cfg.seconds - server.sample_s / 2:
        s = await next_sample(prev["t"])
        fig = window_figures(logs, prev["t"], s["t"])
        rep = server_reported(logs, prev["t"], s["t"])
        row = {"t_s": round(s["t"] - t_start, 2), **_sample_fields(s),
               "latency_p50_ms": fig["latency_p50_ms"], "latency_p95_ms": fig["latency_p95_ms"],
               "received_fps": fig["received_fps"], "frames_misread": fig["frames_misread"],
               "frames_skipped_by_client": fig["frames_skipped_by_client"],
               "server_errors": sum(fig["server_errors"].values()),
               "server_latency_ms": rep["latency_ms_median"], "server_fps_out": rep["fps_out_median"],
               "server_dropped_total": rep["dropped_total"]}
        rows.append(row)
        log.info("soak row %s", json.dumps(row))
        prev = s
    s1, c1 = _psutil_snapshot(sproc), me.cpu_times()
    # The window is the sampler's, so per-call figures line up with the rows.
    return rows, t_start, prev["t"], s0, s1, c0, c1


def _sample_fields(s: dict[str, Any]) -> dict[str, Any]:
    return {k: s.get(k) for k in ("rss_mb", "fds", "sockets", "threads", "tasks", "cpu_pct", "loop_lag_ms")}


def run(cfg: Config, server: ServerHandle | None = None) -> dict[str, Any]:
    """One load or soak run; the result as a JSON-ready dict.

    Starts (and stops) a fresh server subprocess, unless ``server`` from :func:`tricam_server`
    is given, whose ``max_sessions`` and sampling period then apply.
    """
    cfg.check()
    if server is None:
        with tricam_server(cfg.calls, cfg.sample_s, cfg.workers, cfg.device) as fresh:
            return run(cfg, fresh)
    if cfg.style not in server.styles:
        raise ValueError(f"unknown style {cfg.style!r}; the server offers {', '.join(server.styles)}")
    if cfg.calls > server.max_sessions:
        raise ValueError(f"{cfg.calls} calls but the server allows {server.max_sessions} sessions")
    return asyncio.run(_drive(cfg, server))


def run_load(calls: int = 8, style: str = "none", seconds: float = 30.0, server: ServerHandle | None = None,
             **kw: Any) -> dict[str, Any]:
    """``calls`` concurrent calls for ``seconds``; ``kw``: other :class:`Config` fields."""
    return run(Config(calls=calls, style=style, seconds=seconds, **kw), server)


def run_soak(seconds: float = 600.0, sample_s: float = 10.0, style: str = "none",
             server: ServerHandle | None = None, **kw: Any) -> dict[str, Any]:
    """One call (``calls`` in ``kw`` for more) for ``seconds``, a row every ``sample_s``, and slopes."""
    kw.setdefault("calls", 1)
    return run(Config(soak=True, seconds=seconds, sample_s=sample_s, style=style, **kw), server)


def plot_soak(result: dict[str, Any], path: Path) -> None:
    """The soak rows, one panel per metric, with the fitted line over the fitted span."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    soak = result["soak"]
    rows, skip = soak["rows"], soak["warmup_excluded_s"]
    metrics = [("rss_mb", "RSS (MB)"), ("fds", "open fds"), ("sockets", "inet sockets"), ("threads", "threads"),
               ("tasks", "asyncio tasks"), ("latency_p50_ms", "latency p50 (ms)"),
               ("received_fps", "received fps"), ("loop_lag_ms", "loop lag (ms)")]
    fig, axes = plt.subplots(2, 4, figsize=(16, 7), sharex=True)
    for ax, (key, label) in zip(axes.flat, metrics, strict=True):
        pts = [(r["t_s"] / 60.0, r[key]) for r in rows if r.get(key) is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", ms=3)
        slope = soak["slopes"].get(f"{key}_per_min")
        fitted = [p for p in pts if p[0] * 60.0 >= skip]
        if slope is not None and fitted:
            t = np.array([p[0] for p in fitted])
            y = np.array([p[1] for p in fitted], float)
            ax.plot(t, np.polyval(np.polyfit(t, y, 1), t), "r--",
                    label=f"{slope:+.3g}/min, {'flat' if soak['flat'][key] else 'NOT flat'}")
            ax.legend(fontsize=8)
        ax.axvline(skip / 60.0, color="grey", lw=0.5)
        ax.set_title(label)
        ax.set_xlabel("minutes")
    cfg = result["config"]
    fig.suptitle(f"tricam soak: {cfg['calls']} call(s), style {cfg['style']}, {cfg['size']} @ {cfg['fps']} fps")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --- command line -------------------------------------------------------------------------------


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH, got {text!r}") from None
    return w, h


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == [SERVER_CHILD]:
        return server_child(args[1:])
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=None, help="concurrent calls (default 8; 1 with --soak)")
    ap.add_argument("--style", default="none", help="style every call selects (default none; e.g. pose)")
    ap.add_argument("--seconds", type=float, default=None, help="measured seconds (default 30; 600 with --soak)")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds after the calls connect (default 5)")
    ap.add_argument("--size", type=_size, default=(640, 480), help="frame size WxH (default 640x480)")
    ap.add_argument("--fps", type=float, default=30.0, help="camera rate (default 30)")
    ap.add_argument("--source", choices=["auto", "talking-head", "synthetic"], default="auto",
                    help="video content: the shared talking-head clip (auto: when present) or a texture")
    ap.add_argument("--workers", type=int, default=None, help="server --workers (default: the server's)")
    ap.add_argument("--device", default="cpu", help="server --device (default cpu)")
    ap.add_argument("--soak", action="store_true", help="long-call mode: rows every --sample seconds, slopes")
    ap.add_argument("--sample", type=float, default=10.0, help="server sampling period, s (default 10)")
    ap.add_argument("--fit-skip", type=float, default=None,
                    help="soak warm-up excluded from the fits, s (default 60, or a quarter of shorter runs)")
    ap.add_argument("--plot", type=Path, default=None, help="soak only: draw the rows to this PNG")
    ap.add_argument("-v", "--verbose", action="store_true")
    ns = ap.parse_args(args)
    logging.basicConfig(level=logging.DEBUG if ns.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("aioice", "aiortc"):  # their INFO lines would bury ours
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Ctrl-C, and SIGTERM turned into it, take the cleanup path (calls closed, server stopped,
    # temp files removed); SIGINT is re-armed because shells ignore it in background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    if ns.plot is not None and not ns.soak:
        ap.error("--plot draws soak rows: use it with --soak")
    cfg = Config(calls=ns.calls or (1 if ns.soak else 8), style=ns.style,
                 seconds=ns.seconds or (600.0 if ns.soak else 30.0), warmup=ns.warmup, size=ns.size,
                 fps=ns.fps, source=ns.source, sample_s=ns.sample, workers=ns.workers, device=ns.device,
                 soak=ns.soak, fit_skip_s=ns.fit_skip)
    try:
        result = run(cfg)
    except (ValueError, RuntimeError, TimeoutError, FileNotFoundError) as e:
        log.error("%s", e)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted; calls and server stopped")
        return 130
    if ns.plot is not None:
        plot_soak(result, ns.plot)
        result["plot"] = str(ns.plot)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
