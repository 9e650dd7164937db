"""The real server against real aiortc callers over real websockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import aiohttp
import pytest

from engine.api import Engine, StyleRegistry
from engine.styles.basic import Bronze, PassThrough
from streamer import protocol as p
from tests.streamer.conftest import (
    FakeSink,
    FakeTarget,
    RecordingEngine,
    StartServer,
    is_bronze,
    is_plain,
    settle,
)

pytestmark = pytest.mark.timeout(60)




async def test_healthz_and_client_files(start_server: StartServer) -> None:
    server = await start_server()
    async with server.http.get(server.url + "/healthz") as r:
        body = await r.json()
    assert body == {"ok": True, "mode": "webrtc", "sessions": 0, "max_sessions": 4, "styles": ["none", "bronze"]}
    async with server.http.get(server.url + "/") as r:
        assert r.status == 200 and 'id="remote"' in await r.text()
    async with server.http.get(server.url + "/app.js") as r:
        assert r.status == 200
    async with server.http.get(server.url + "/..%2Fpyproject.toml") as r:
        assert r.status == 404


async def test_hello_state_styles(start_server: StartServer) -> None:
    server = await start_server()
    c = await server.connect()
    hello = await c.expect("hello")
    assert hello["mode"] == "webrtc" and hello["max_message_bytes"] == p.MAX_MESSAGE_BYTES
    assert (await c.expect("state"))["style"] == "none"
    styles = await c.request({"type": "list_styles", "id": 7}, "styles")
    assert styles["id"] == 7 and styles["current"] == "none"
    bronze = next(s for s in styles["styles"] if s["name"] == "bronze")
    assert (bronze["intensity_min"], bronze["intensity_max"]) == (0.0, 1.0)


async def test_frames_flow_and_style_switch_within_three_frames(start_server: StartServer) -> None:
    sink = FakeSink()
    server = await start_server(sinks=[sink])
    c = await server.connect()
    await c.call(320, 240)
    frames = await c.wait_frames(10)
    assert all((f.width, f.height) == (320, 240) for f in frames)
    assert all(is_plain(f.mean_rgb) for f in frames), [f.mean_rgb for f in frames]

    reply = await c.request({"type": "set_style", "style": "bronze", "intensity": 1.0, "id": "s1"}, "state")
    assert reply == {"type": "state", "style": "bronze", "intensity": 1.0, "id": "s1"}
    after = await c.wait_frames(6)
    first_bronze = next(i for i, f in enumerate(after) if is_bronze(f.mean_rgb))
    assert first_bronze < 3, [f.mean_rgb for f in after]
    assert all(is_bronze(f.mean_rgb) for f in after[first_bronze:])

    stats = await c.expect("stats", lambda m: m["style"] == "bronze" and m["frames_out"] > 0, timeout=3.0)
    assert set(p.STATS_FIELDS) <= set(stats)
    assert stats["fps_out"] > 5 and stats["latency_ms"] is not None and stats["engine_ms"] is not None
    assert stats["faces"] is None and stats["dropped"] >= 0
    asked = await c.request({"type": "get_stats", "id": 3}, "stats")
    assert asked["id"] == 3 and asked["frames_in"] >= asked["frames_out"] > 0

    # The sink saw edited frames of this session at the camera's size, with media times.
    session_id = (await c.expect("hello"))["session"]
    assert any(sid == session_id and shape == (240, 320, 3) for sid, shape, _ in sink.frames)
    pts = [t for _, _, t in sink.frames]
    assert pts == sorted(pts)


BAD_MESSAGES: list[tuple[Any, str]] = [
    ("{not json", "bad_json"),
    ('["a list"]', "bad_message"),
    ({"type": "dance"}, "bad_message"),
    ({"type": "set_style"}, "bad_message"),
    ({"type": "set_style", "style": "marble"}, "unknown_style"),
    ({"type": "set_style", "style": "bronze", "intensity": 7}, "out_of_range"),
    ({"type": "set_style", "style": "bronze", "intensity": "lots"}, "bad_message"),
    ({"type": "offer", "sdp": "v=0 garbage"}, "bad_sdp"),
    ("x" * (p.MAX_MESSAGE_BYTES + 10), "too_large"),
]


async def test_bad_messages_get_errors_while_frames_keep_flowing(start_server: StartServer) -> None:
    server = await start_server()
    c = await server.connect()
    await c.call(160, 120)
    await c.wait_frames(3)
    await c.request({"type": "set_style", "style": "bronze"}, "state")
    assert is_bronze((await c.wait_frames(4))[-1].mean_rgb)
    for msg, code in BAD_MESSAGES:
        err = await c.request(msg, "error")
        assert err["code"] == code, (msg if len(str(msg)) < 100 else "oversized", err)
        assert err["message"]
    start = len(c.messages)
    await c.ws.send_bytes(b"\x00\x01")
    assert (await c.expect("error", start=start))["code"] == "bad_message"
    # The bad offer did not replace the working call; the call and style survive it all.
    frames = await c.wait_frames(5)
    assert all(is_bronze(f.mean_rgb) for f in frames), [f.mean_rgb for f in frames]
    assert (await c.request({"type": "get_stats"}, "stats"))["style"] == "bronze"
    assert not c.ws.closed


async def test_closing_websocket_frees_everything(start_server: StartServer) -> None:
    engine = RecordingEngine()
    sink = FakeSink()
    server = await start_server(engine, sinks=[sink])
    baseline = set(asyncio.all_tasks())
    c = await server.connect()
    await c.call(160, 120)
    await c.wait_frames(5)
    (session,) = server.hub.sessions.values()
    server_pc = session.pc
    assert server_pc is not None and server_pc.connectionState == "connected"
    pc_ref = weakref.ref(server_pc)
    del server_pc, session
    await c.close()
    await settle(lambda: not server.hub.sessions)
    assert engine.closed == engine.opened and len(engine.opened) == 1
    assert len(sink.ended) == 1
    # Every task the session and both peers started has finished.
    await settle(lambda: not (set(asyncio.all_tasks()) - baseline - {asyncio.current_task()}))
    gc.collect()
    assert pc_ref() is None or pc_ref().connectionState == "closed"


async def test_bye_closes_cleanly(start_server: StartServer) -> None:
    server = await start_server()
    c = await server.connect()
    await c.call(160, 120)
    await c.wait_frames(2)
    await c.send({"type": "bye"})
    await settle(lambda: c.ws.closed and not server.hub.sessions)


async def test_two_sessions_keep_their_own_styles(start_server: StartServer) -> None:
    server = await start_server()
    a, b = await server.connect(), await server.connect()
    await a.call(160, 120)
    await b.call(160, 120)
    await a.request({"type": "set_style", "style": "bronze"}, "state")
    await a.wait_frames(4)
    fa, fb = await a.wait_frames(8), await b.wait_frames(8)
    assert all(is_bronze(f.mean_rgb) for f in fa)
    assert all(is_plain(f.mean_rgb) for f in fb)
    sa = await a.request({"type": "get_stats"}, "stats")
    sb = await b.request({"type": "get_stats"}, "stats")
    assert (sa["style"], sb["style"]) == ("bronze", "none")


async def test_max_sessions_gives_busy(start_server: StartServer) -> None:
    server = await start_server(max_sessions=1)
    first = await server.connect()
    await first.expect("hello")
    ws = await server.http.ws_connect(server.url + "/ws")
    msg = await ws.receive_json(timeout=5)
    assert msg["type"] == "error" and msg["code"] == "busy"
    assert (await ws.receive(timeout=5)).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    await ws.close()
    assert (await first.request({"type": "get_stats"}, "stats"))["type"] == "stats"


@pytest.mark.parametrize(
    "size",
    [(641, 479), (333, 201), (16, 16), pytest.param((3840, 2160), marks=pytest.mark.timeout(90))],
    ids=lambda s: f"{s[0]}x{s[1]}",
)
async def test_odd_sizes_round_trip(start_server: StartServer, size: tuple[int, int]) -> None:
    server = await start_server()
    c = await server.connect()
    await c.request({"type": "set_style", "style": "bronze", "intensity": 1.0}, "state")
    w, h = size
    big = w * h > 2_000_000
    await c.call(w, h, fps=5.0 if big else 30.0)
    frames = await c.wait_frames(2 if big else 5, timeout=40.0 if big else 10.0)
    assert {(f.width, f.height) for f in frames} == {size}
    # A second offer on the same websocket replaces the call (what a reconnect does).
    if not big:
        await c.call(w + 1, h + 1)
        frames = await c.wait_frames(3)
        assert {(f.width, f.height) for f in frames} == {(w + 1, h + 1)}
    assert len(server.hub.sessions) == 1


async def test_control_mode_drives_shared_target(start_server: StartServer) -> None:
    target = FakeTarget()
    engine = Engine(StyleRegistry([PassThrough(), Bronze()]))
    server = await start_server(engine, control=target)
    a, b = await server.connect(), await server.connect()
    assert (await a.expect("hello"))["mode"] == "control"
    err = await a.request({"type": "offer", "sdp": "v=0"}, "error")
    assert err["code"] == "bad_message" and "control mode" in err["message"]
    await a.request({"type": "set_style", "style": "bronze", "intensity": 0.5}, "state")
    assert target.calls == [("bronze", 0.5)]
    # The other remote control hears about the change.
    await b.expect("state", lambda m: m["style"] == "bronze")
    assert (await b.request({"type": "list_styles"}, "styles"))["current"] == "bronze"
    stats = await b.request({"type": "get_stats"}, "stats")
    assert stats["frames_out"] == 42 and stats["dropped"] is None
    # Bad requests are still refused by the registry, and do not reach the target.
    assert (await a.request({"type": "set_style", "style": "bronze", "intensity": 2}, "error"))["code"] == "out_of_range"
    assert target.calls == [("bronze", 0.5)]
    # A figure that is not JSON (NaN) becomes an `internal` error, not a dead session.
    target.broken = True
    assert (await a.request({"type": "get_stats", "id": 5}, "error"))["code"] == "internal"
    target.broken = False
    # Stats are pushed without any peer connection.
    await a.expect("stats", lambda m: "id" not in m, timeout=3.0)
    async with server.http.get(server.url + "/healthz") as r:
        assert (await r.json())["mode"] == "control"


async def test_shutdown_closes_sessions_and_sinks(start_server: StartServer) -> None:
    sink = FakeSink()
    engine = RecordingEngine()
    server = await start_server(engine, sinks=[sink])
    c = await server.connect()
    await c.call(160, 120)
    await c.wait_frames(2)
    await server.runner.cleanup()
    assert not server.hub.sessions
    assert engine.closed == engine.opened and sink.closed == 1 and len(sink.ended) == 1
    await settle(lambda: c.ws.closed)
