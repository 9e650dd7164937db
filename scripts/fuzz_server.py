"""Fuzz the live server: the ``/ws`` protocol, offers (SDP), and frames of any size and format.

Three inputs, each against the real code:

- **protocol**: hypothesis-generated websocket messages — random JSON of every type (deep,
  unicode, huge numbers, NaN spelled out), valid messages with mutated fields, random text
  and binary frames, messages near and over the 256 KiB limit — sent one by one over a
  real websocket to a running server. Every message must get exactly one reply (``bye``
  ends the session; the fuzzer reconnects), and the reply's code is tallied.
- **sdp**: a corpus of malformed offers made by mutating a real aiortc offer (truncated,
  lines dropped, duplicated, swapped, bytes flipped, media sections multiplied, thousands
  of candidates, junk) sent as ``offer`` messages; each must be answered (``answer`` or an
  ``error``) and the session must live on.
- **frames**: random sizes (1 px to 1280 px a side, odd included) and pixel formats
  through the frame pipeline with an editing style; every output must have the input's size.
- **images**: corrupted reference photos (valid PNG/JPEG/WebP truncated, bytes flipped,
  chunks repeated, headers claiming huge sizes, random bytes, wrong declared types) posted to
  ``/upload`` over HTTP; each must get a 200 or a 4xx with a JSON error, never a 500.

Afterwards a real aiortc call on the same server must still receive edited video.

    python scripts/fuzz_server.py --seconds 60 --json      # ~20 s per part, one JSON object

The tests run the same generators briefly (tests/streamer/test_fuzz.py) and, under the
``slow`` mark, for longer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import numpy as np  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

log = logging.getLogger("fuzz_server")
LOOPBACK = "127.0.0.1"
MESSAGE_TYPES = ("offer", "set_style", "list_styles", "get_stats", "bye")
PIXEL_FORMATS = ("yuv420p", "yuvj420p", "nv12", "yuv444p", "rgb24", "bgr24", "rgba", "gray")

# --- protocol messages ------------------------------------------------------------------

_scalars = (
    st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63, max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40)
)
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=30,
)


def _valid_message(kind: str) -> dict[str, Any]:
    return {
        "offer": {"type": "offer", "sdp": "v=0\r\n"},
        "set_style": {"type": "set_style", "style": "bronze", "intensity": 0.5},
        "list_styles": {"type": "list_styles"},
        "get_stats": {"type": "get_stats"},
        "bye": {"type": "bye"},
    }[kind]


@st.composite
def mutated_messages(draw: st.DrawFn) -> str:
    msg = dict(_valid_message(draw(st.sampled_from(MESSAGE_TYPES))))
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(("replace", "drop", "add", "retype", "id", "scope")))
        keys = sorted(msg)
        if action == "replace" and keys:
            msg[draw(st.sampled_from(keys))] = draw(json_values)
        elif action == "drop" and keys:
            msg.pop(draw(st.sampled_from(keys)))
        elif action == "add":
            msg[draw(st.text(max_size=10))] = draw(json_values)
        elif action == "retype":
            msg["type"] = draw(st.sampled_from(MESSAGE_TYPES) | st.text(max_size=12))
        elif action == "id":
            msg["id"] = draw(json_values)
        else:
            msg["scope"] = draw(st.sampled_from(("session", "server", "all", "")) | json_values)
    return json.dumps(msg, allow_nan=draw(st.booleans()))


@st.composite
def deep_json(draw: st.DrawFn) -> str:
    depth = draw(st.integers(50, 20000))
    opener, closer = draw(st.sampled_from((("[", "]"), ('{"a":', "}"))))
    return opener * depth + "1" + closer * depth


@st.composite
def sized_messages(draw: st.DrawFn) -> str:
    # Around the 256 KiB protocol limit, in 1- and 3-byte characters.
    char = draw(st.sampled_from(("a", "€")))
    n = draw(st.integers(80_000, 280_000)) // len(char.encode())
    return json.dumps({"type": "set_style", "style": char * n})


def protocol_messages() -> st.SearchStrategy[str | bytes]:
    """Any websocket message a hostile or buggy client might send (text or binary)."""
    text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=200)
    return st.one_of(
        json_values.map(lambda v: json.dumps(v)),
        mutated_messages(),
        mutated_messages(),
        text,
        st.binary(max_size=200),
        deep_json(),
        sized_messages(),
        st.sampled_from([  # what json.loads accepts but JSON forbids, and near-misses
            '{"type":"set_style","style":"bronze","intensity":NaN}',
            '{"type":"set_style","style":"bronze","intensity":-Infinity}',
            '{"type":"set_style","style":"bronze","intensity":1e999}',
            '{"type":"get_stats","id":{"nested":[1,2,3]}}',
            '{"type":"offer","sdp":"v=0","type":"bye"}',
            '{"type":"set_style","style":"\u0000"}',
            '\ufeff{"type":"list_styles"}',
        ]),
    )


REPLY_TYPES = {"error", "state", "styles", "stats", "answer"}


class ProtocolFuzzer:
    """A synchronous websocket client that sends one message and waits for its one reply."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.tally: Counter[str] = Counter()
        self.inputs = 0
        self.reconnects = 0
        self._ws: Any = None
        self._stack = contextlib.ExitStack()

    def _connect(self) -> None:
        from websockets.sync.client import connect

        self._stack.close()
        self._ws = self._stack.enter_context(connect(self.url, max_size=None, open_timeout=10))
        hello = json.loads(self._ws.recv(timeout=10))
        state = json.loads(self._ws.recv(timeout=10))
        if hello.get("type") != "hello" or state.get("type") != "state":
            raise AssertionError(f"unexpected greeting {hello} {state}")

    def send(self, message: str | bytes) -> str:
        """Send one message; return what came back (a reply type / error code, or ``closed``)."""
        if self._ws is None:
            self._connect()
        self.inputs += 1
        self._ws.send(message)
        is_bye = False
        if isinstance(message, str):
            try:
                obj = json.loads(message)
                is_bye = isinstance(obj, dict) and obj.get("type") == "bye"
            except (ValueError, RecursionError):
                pass
        try:
            reply = json.loads(self._ws.recv(timeout=10))
        except Exception as e:  # the server closed this websocket
            from websockets.exceptions import ConnectionClosed

            if not isinstance(e, ConnectionClosed):
                raise AssertionError(f"no reply within 10 s to {str(message)[:80]!r}") from e
            outcome = "closed_after_bye" if is_bye else f"closed:{e.rcvd.code if e.rcvd else 'none'}"
            self.tally[outcome] += 1
            self.reconnects += 1
            self._ws = None
            return outcome
        if reply.get("type") not in REPLY_TYPES:
            raise AssertionError(f"unexpected reply {reply}")
        outcome = f"error:{reply['code']}" if reply["type"] == "error" else reply["type"]
        self.tally[outcome] += 1
        return outcome

    def close(self) -> None:
        self._stack.close()
        self._ws = None


def run_protocol_fuzz(url: str, examples: int, seed: int | None = None) -> ProtocolFuzzer:
    """Send ``examples`` hypothesis-generated messages over one (reconnecting) websocket."""
    from hypothesis import seed as hseed

    fuzzer = ProtocolFuzzer(url)

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(protocol_messages())
    def one(message: str | bytes) -> None:
        outcome = fuzzer.send(message)
        # Only bye (or a message beyond the transport's hard limit) may end a session.
        if outcome.startswith("closed:") and not (isinstance(message, str) and len(message) > 1_000_000):
            raise AssertionError(f"session closed ({outcome}) by {str(message)[:120]!r}")

    test = hseed(seed)(one) if seed is not None else one
    try:
        test()
    finally:
        fuzzer.close()
    return fuzzer


# --- SDP --------------------------------------------------------------------------------


def sdp_corpus(base: str, count: int, seed: int = 0) -> Iterator[str]:
    """Malformed offers made from a real one (deterministic for a seed)."""
    rng = random.Random(seed)
    lines = base.strip().split("\r\n")
    fixed = [
        "", " ", "v=0", "v=0\r\nm=video", "m=video 9 UDP/TLS/RTP/SAVPF 96", "\x00" * 64,
        base.replace("a=fingerprint:sha-256", "a=fingerprint:sha-999"),
        base.replace("a=setup:actpass", "a=setup:sideways"),
        "\r\n".join(ln for ln in lines if not ln.startswith("a=ice-ufrag")),
        "\r\n".join(ln for ln in lines if not ln.startswith("a=fingerprint")),
        "\r\n".join(ln for ln in lines if not ln.startswith("a=rtpmap")),
        base.replace("m=video 9", "m=video -1"),
        base.replace("m=video 9", "m=video 99999999999999999999"),
        base + "\r\n".join(f"a=candidate:{i} 1 udp 1 127.0.0.1 {1000 + i} typ host" for i in range(3000)),
        base.replace("\r\n", "\n"),
        base.replace("m=video", "m=application"),
        base.replace("sendrecv", "inactive"),
        base + "\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n",
        base * 3,
        "x" * 200_000,
    ]
    made = 0
    for sdp in fixed:
        if made >= count:
            return
        made += 1
        yield sdp
    while made < count:
        kind = rng.randrange(6)
        work = list(lines)
        if kind == 0:
            text = base[: rng.randrange(len(base))]
        elif kind == 1:
            for _ in range(rng.randint(1, 5)):
                work.pop(rng.randrange(len(work)))
            text = "\r\n".join(work)
        elif kind == 2:
            i = rng.randrange(len(work))
            work[i:i] = [work[rng.randrange(len(work))]] * rng.randint(1, 20)
            text = "\r\n".join(work)
        elif kind == 3:
            i, j = rng.randrange(len(work)), rng.randrange(len(work))
            work[i], work[j] = work[j], work[i]
            text = "\r\n".join(work)
        elif kind == 4:
            chars = list(base)
            for _ in range(rng.randint(1, 30)):
                chars[rng.randrange(len(chars))] = chr(rng.randrange(32, 0x2FF))
            text = "".join(chars)
        else:
            i = rng.randrange(len(work))
            work[i] = work[i][: rng.randrange(len(work[i]) + 1)] + "".join(
                chr(rng.randrange(33, 127)) for _ in range(rng.randint(0, 40)))
            text = "\r\n".join(work)
        made += 1
        yield text


async def real_offer() -> str:
    from aiortc import RTCConfiguration, RTCPeerConnection

    from streamer import ice

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="sendrecv")
    try:
        with ice.host_addresses([LOOPBACK]):
            await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()


async def run_sdp_fuzz(url: str, count: int, seed: int = 0, seconds: float | None = None) -> Counter[str]:
    """Send malformed offers over one websocket; every one must be answered, the session kept."""
    import aiohttp

    tally: Counter[str] = Counter()
    base = await real_offer()
    stop_at = None if seconds is None else time.monotonic() + seconds
    async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=0) as ws:
        for _ in range(2):  # hello, state
            await ws.receive_json(timeout=10)
        for i, sdp in enumerate(sdp_corpus(base, count, seed)):
            if stop_at is not None and time.monotonic() > stop_at:
                break
            await ws.send_str(json.dumps({"type": "offer", "sdp": sdp, "id": i}))
            while True:
                reply = await ws.receive_json(timeout=30)
                if reply.get("id") == i or (reply["type"] == "error" and reply["code"] == "too_large"):
                    break
            tally["answer" if reply["type"] == "answer" else f"error:{reply['code']}"] += 1
        alive = await _ask(ws, {"type": "get_stats", "id": "alive"})
        tally["session_alive"] = int(alive.get("type") == "stats")
    return tally


async def _ask(ws: Any, msg: dict[str, Any]) -> dict[str, Any]:
    await ws.send_str(json.dumps(msg))
    while True:
        reply: dict[str, Any] = await ws.receive_json(timeout=10)
        if reply.get("id") == msg["id"]:
            return reply


# --- frames ------------------------------------------------------------------------------


def random_frame(rng: random.Random) -> av.VideoFrame:
    w = rng.choice((1, 2, 3, 15, 16, 17, 63, 64, 65)) if rng.random() < 0.4 else rng.randint(1, 1280)
    h = rng.choice((1, 2, 3, 15, 16, 17, 63, 64, 65)) if rng.random() < 0.4 else rng.randint(1, 720)
    fmt = rng.choice(PIXEL_FORMATS)
    rgb = np.random.default_rng(rng.randrange(2**32)).integers(0, 256, (h, w, 3), dtype=np.uint8)
    if fmt in ("rgb24", "bgr24"):
        frame = av.VideoFrame.from_ndarray(rgb, format=fmt)
    elif fmt == "rgba":
        frame = av.VideoFrame.from_ndarray(np.dstack([rgb, rgb[..., :1]]), format="rgba")
    elif fmt == "gray":
        frame = av.VideoFrame.from_ndarray(rgb[..., 0].copy(), format="gray")
    else:
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=fmt)
    frame.pts = rng.choice((None, 0, rng.randrange(2**31)))
    if rng.random() < 0.7:  # else: no time base at all
        frame.time_base = rng.choice((Fraction(1, 90000), Fraction(1, 30)))
    return frame


def run_frame_fuzz(count: int, seed: int = 0, seconds: float | None = None) -> Counter[str]:
    """Random frames through the pipeline with an editing style: size kept, nothing raised."""
    from engine.api import Engine, StyleRegistry
    from engine.styles.basic import Bronze, PassThrough
    from streamer.pipeline import Pipeline

    rng = random.Random(seed)
    engine = Engine(StyleRegistry([PassThrough(), Bronze()]))
    pipe = Pipeline("fuzz", engine.registry, engine.open_session(), style="bronze")
    tally: Counter[str] = Counter()
    stop_at = None if seconds is None else time.monotonic() + seconds
    for i in range(count):
        if stop_at is not None and time.monotonic() > stop_at:
            break
        frame = random_frame(rng)
        pipe.set_style("bronze" if i % 4 else "none", 1.0)
        errors = pipe.errors
        out, _ = pipe.process_frame(frame)
        if (out.width, out.height) != (frame.width, frame.height):
            raise AssertionError(f"{frame.format.name} {frame.width}x{frame.height} came back "
                                 f"{out.width}x{out.height}")
        tally["passed_through_after_error" if pipe.errors > errors else "ok"] += 1
        tally[f"format:{frame.format.name}"] += 1
    return tally


# --- images -----------------------------------------------------------------------------


def _encoded_images(seed: int) -> list[tuple[bytes, str]]:
    import io

    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for fmt, mime in (("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")):
        img = Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
        buf = io.BytesIO()
        img.save(buf, format=fmt)
        out.append((buf.getvalue(), mime))
    return out


def image_corpus(count: int, seed: int = 0) -> Iterator[tuple[bytes, str]]:
    """Corrupted and hostile uploads, each with the Content-Type it is sent under."""
    import struct
    import zlib

    rng = random.Random(seed)
    bases = _encoded_images(seed)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    def png_claiming(w: int, h: int) -> bytes:  # a well-formed start whose header lies about its size
        ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
                + chunk(b"IEND", b""))

    fixed: list[tuple[bytes, str]] = [
        (b"", "image/png"), (b"\x00", "image/jpeg"), (png_claiming(100_000, 100_000), "image/png"),
        (png_claiming(1, 2**31 - 1), "image/png"), (png_claiming(0, 0), "image/png"),
        (bases[0][0], "image/gif"), (bases[0][0], "text/html"), (bases[1][0], "image/png"),
        (b"GIF89a" + bytes(100), "image/png"), (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/png"),
    ]
    for i, item in enumerate(fixed):
        if i >= count:
            return
        yield item
    for _ in range(count - len(fixed)):
        data, mime = rng.choice(bases)
        b = bytearray(data)
        kind = rng.randrange(5)
        if kind == 0:
            b = b[: rng.randrange(len(b))]
        elif kind == 1:
            for _ in range(rng.randint(1, 20)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        elif kind == 2:
            i = rng.randrange(len(b))
            b[i:i] = b[i : i + rng.randint(1, 200)] * rng.randint(1, 20)
        elif kind == 3:
            b = bytearray(rng.randbytes(rng.randint(1, 4000)))
        else:
            mime = rng.choice(("image/png", "image/jpeg", "image/webp", "application/octet-stream", ""))
        yield bytes(b), mime


async def run_image_fuzz(base_url: str, count: int, seed: int = 0, seconds: float | None = None) -> Counter[str]:
    """POST corrupted images to ``/upload``; tally statuses and error codes (no 5xx allowed)."""
    import aiohttp

    tally: Counter[str] = Counter()
    stop_at = None if seconds is None else time.monotonic() + seconds
    async with aiohttp.ClientSession() as http:
        for data, mime in image_corpus(count, seed):
            if stop_at is not None and time.monotonic() > stop_at:
                break
            headers = {"Content-Type": mime} if mime else {}
            async with http.post(base_url + "/upload", data=data, headers=headers) as r:
                body = await r.json(content_type=None)
                if r.status >= 500:
                    raise AssertionError(f"/upload answered {r.status} to {len(data)} bytes as {mime!r}")
                tally[f"{r.status}:{body['error']['code']}" if r.status != 200 else "200:stored"] += 1
    return tally


# --- a server to fuzz, on its own thread ------------------------------------------------


class ThreadedServer:
    """The real app (``create_app``) on 127.0.0.1, on a loop thread, for synchronous clients."""

    def __init__(self, **create_app_kwargs: Any) -> None:
        self.kwargs = create_app_kwargs
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> ThreadedServer:
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            try:
                asyncio.run(self._serve(ready))
            except BaseException as e:
                failure.append(e)
                ready.set()

        self._thread = threading.Thread(target=main, name="fuzz-server", daemon=True)
        self._thread.start()
        if not ready.wait(30) or failure:
            raise RuntimeError(f"the server did not start: {failure}")
        return self

    async def _serve(self, ready: threading.Event) -> None:
        from aiohttp import web

        from streamer.server import create_app

        app = create_app(**self.kwargs)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, LOOPBACK, 0)
        await site.start()
        self.url = f"ws://{LOOPBACK}:{runner.addresses[0][1]}/ws"
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)


def fuzz_server_kwargs() -> dict[str, Any]:
    """The app under fuzz: the model-free styles, limits raised so every message is answered."""
    from engine.api import Engine, StyleRegistry
    from engine.styles.basic import Bronze, PassThrough
    from streamer.session import SessionLimits
    from streamer.uploads import UploadLimits

    return dict(
        engine=Engine(StyleRegistry([PassThrough(), Bronze()])), client_dir=None, ice_hosts=[LOOPBACK],
        limits=SessionLimits(max_messages_per_second=100_000, max_offers_per_minute=100_000),
        upload_limits=UploadLimits(per_minute=1_000_000),
    )


async def call_still_works(url: str, seconds: float = 3.0) -> int:
    """Frames of a real aiortc call in bronze received within ``seconds``."""
    import aiohttp
    from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamError, VideoStreamTrack

    from streamer import ice

    received = 0
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver(VideoStreamTrack(), direction="sendrecv")
    done = asyncio.Event()

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        async def read() -> None:
            nonlocal received
            try:
                while True:
                    await track.recv()
                    received += 1
            except MediaStreamError:
                done.set()
        asyncio.ensure_future(read())

    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
            for _ in range(2):
                await ws.receive_json(timeout=10)
            await _ask(ws, {"type": "set_style", "style": "bronze", "id": "s"})
            with ice.host_addresses([LOOPBACK]):
                await pc.setLocalDescription(await pc.createOffer())
            answer = await _ask(ws, {"type": "offer", "sdp": pc.localDescription.sdp, "id": "o"})
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
            await asyncio.sleep(seconds)
    finally:
        await pc.close()
    return received


def run_all(seconds: float, seed: int = 0) -> dict[str, Any]:
    share = seconds / 4.0
    report: dict[str, Any] = {"seconds": seconds, "seed": seed}
    with ThreadedServer(**fuzz_server_kwargs()) as server:
        t0 = time.monotonic()
        protocol = ProtocolFuzzer(server.url)
        batches = 0
        while time.monotonic() - t0 < share:
            batch = run_protocol_fuzz(server.url, 100, seed=seed + batches)
            protocol.tally.update(batch.tally)
            protocol.inputs += batch.inputs
            protocol.reconnects += batch.reconnects
            batches += 1
        report["protocol"] = {"inputs": protocol.inputs, "reconnects_after_close": protocol.reconnects,
                              "outcomes": dict(protocol.tally.most_common())}
        sdp = asyncio.run(run_sdp_fuzz(server.url, 100_000, seed, seconds=share))
        report["sdp"] = {"inputs": sum(v for k, v in sdp.items() if k != "session_alive"),
                         "session_alive": bool(sdp.pop("session_alive")), "outcomes": dict(sdp.most_common())}
        frames = run_frame_fuzz(10**9, seed, seconds=share)
        report["frames"] = {"inputs": sum(v for k, v in frames.items() if not k.startswith("format:")),
                            "outcomes": dict(frames.most_common())}
        http_base = server.url.replace("ws://", "http://").removesuffix("/ws")
        images = asyncio.run(run_image_fuzz(http_base, 10**9, seed, seconds=share))
        report["images"] = {"inputs": sum(images.values()), "outcomes": dict(images.most_common())}
        report["call_after_fuzz_frames"] = asyncio.run(call_still_works(server.url))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=60.0, help="total budget, split over the four parts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object (default: also JSON)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The server logs every refused input; a fuzz run makes thousands of them.
    logging.getLogger("streamer").setLevel(logging.CRITICAL)
    logging.getLogger("aiortc").setLevel(logging.CRITICAL)
    report = run_all(args.seconds, args.seed)
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0 if report["call_after_fuzz_frames"] > 0 and report["sdp"]["session_alive"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
