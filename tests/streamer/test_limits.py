"""Per-client limits over real websockets and aiortc peers on 127.0.0.1, and ``scope: server``."""

from __future__ import annotations

import asyncio

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from streamer import ice
from streamer import protocol as p
from streamer.session import SessionLimits, check_offer_tracks
from tests.streamer.conftest import LOOPBACK, PatternTrack, StartServer, is_bronze, is_plain

pytestmark = pytest.mark.timeout(60)


async def _offer(tracks: int, audio: bool = False) -> tuple[RTCPeerConnection, str]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    for _ in range(tracks):
        pc.addTransceiver(PatternTrack(64, 48), direction="sendrecv")
    if audio:
        pc.addTransceiver("audio", direction="sendrecv")
    with ice.host_addresses([LOOPBACK]):
        await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


async def test_one_video_track_per_offer(start_server: StartServer) -> None:
    server = await start_server()
    c = await server.connect()
    pc, sdp = await _offer(2)
    try:
        err = await c.request({"type": "offer", "sdp": sdp, "id": 3}, "error")
        assert (err["code"], err["id"]) == ("too_many_tracks", 3) and "one video track" in err["message"]
        (session,) = server.hub.sessions.values()
        assert session.pc is None  # refused before anything was negotiated or decoded
    finally:
        await pc.close()
    # Video plus audio is what a browser may send: accepted, the audio drained, not processed.
    pc, sdp = await _offer(1, audio=True)
    try:
        assert (await c.request({"type": "offer", "sdp": sdp}, "answer"))["sdp"]
    finally:
        await pc.close()
    await c.call(160, 120)
    await c.wait_frames(3)


def test_offer_check_counts_media_sections_and_needs_credentials() -> None:
    creds = "a=fingerprint:sha-256 AB:CD\r\na=ice-ufrag:u\r\na=ice-pwd:p\r\n"
    check_offer_tracks("v=0\r\n" + creds + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n")
    check_offer_tracks("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n" + creds)  # media-level is fine too
    check_offer_tracks("v=0\r\nm=video 0 UDP/TLS/RTP/SAVPF 96\r\n")  # rejected section: nothing needed
    with pytest.raises(p.ProtocolError) as e:
        check_offer_tracks("v=0\r\n" + "m=audio 9 UDP 0\r\n" * 5)
    assert e.value.code == "too_many_tracks"
    for missing in ("a=fingerprint", "a=ice-ufrag", "a=ice-pwd"):
        text = "".join(line + "\r\n" for line in creds.split("\r\n") if line and not line.startswith(missing))
        with pytest.raises(p.ProtocolError) as e:
            check_offer_tracks("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n" + text)
        assert e.value.code == "bad_sdp" and "video section has no" in e.value.message


async def test_offers_per_minute(start_server: StartServer) -> None:
    server = await start_server(limits=SessionLimits(max_offers_per_minute=2))
    c = await server.connect()
    await c.call(160, 120)
    await c.call(160, 120)
    await c.wait_frames(3)
    pc, sdp = await _offer(1)
    try:
        err = await c.request({"type": "offer", "sdp": sdp}, "error")
    finally:
        await pc.close()
    assert err["code"] == "rate_limited" and "2 a minute" in err["message"] and not err["fatal"]
    await c.wait_frames(5)  # the call in progress is untouched
    assert not c.ws.closed


async def test_sessions_per_address(start_server: StartServer) -> None:
    server = await start_server(limits=SessionLimits(max_sessions_per_address=2), max_sessions=8)
    a, b = await server.connect(), await server.connect()
    await a.expect("hello")
    await b.expect("hello")
    ws = await server.http.ws_connect(server.url + "/ws")
    msg = await ws.receive_json(timeout=5)
    assert msg["code"] == "busy" and "per client" in msg["message"] and msg["fatal"]
    await ws.close()
    await b.close()
    await asyncio.sleep(0.2)
    c = await server.connect()  # a slot freed by a closed session is usable again
    await c.expect("hello")


async def test_message_flood_is_refused_briefly_and_the_session_lives(start_server: StartServer) -> None:
    server = await start_server(limits=SessionLimits(max_messages_per_second=10))
    c = await server.connect()
    await c.expect("state")
    start = len(c.messages)
    for i in range(300):
        await c.send({"type": "get_stats", "id": i})
    await asyncio.sleep(1.0)
    replies = c.messages[start:]
    answered = [m for m in replies if m["type"] == "stats" and "id" in m]
    limited = [m for m in replies if m["type"] == "error"]
    assert 15 <= len(answered) <= 60  # the burst (20) and the rate, not 300
    assert 1 <= len(limited) <= 3 and all(m["code"] == "rate_limited" for m in limited)
    await asyncio.sleep(1.0)  # the bucket refills: normal requests work again
    assert (await c.request({"type": "get_stats", "id": "after"}, "stats"))["id"] == "after"


async def test_scope_server_switches_every_live_call(start_server: StartServer) -> None:
    server = await start_server()
    a, b = await server.connect(), await server.connect()
    await a.call(160, 120)
    await b.call(160, 120)
    await a.wait_frames(3)
    # A third client (what `tricam style` is) switches the style of the whole server.
    hotkey = await server.connect()
    await hotkey.expect("state")
    state = await hotkey.request({"type": "set_style", "style": "bronze", "scope": "server", "id": 1}, "state")
    assert state["style"] == "bronze"
    await a.expect("state", lambda m: m["style"] == "bronze")
    await b.expect("state", lambda m: m["style"] == "bronze")
    fa, fb = await a.wait_frames(6), await b.wait_frames(6)
    assert is_bronze(fa[-1].mean_rgb) and is_bronze(fb[-1].mean_rgb)
    # A session that opens later starts with it; a session-scoped change stays local.
    late = await server.connect()
    assert (await late.expect("state"))["style"] == "bronze"
    await late.close()
    await a.request({"type": "set_style", "style": "none"}, "state")
    await asyncio.sleep(0.3)
    assert is_plain((await a.wait_frames(3))[-1].mean_rgb) and is_bronze((await b.wait_frames(3))[-1].mean_rgb)
    err = await hotkey.request({"type": "set_style", "style": "bronze", "scope": "everyone"}, "error")
    assert err["code"] == "bad_message" and "scope" in err["message"]


def test_limits_are_validated() -> None:
    for bad in (dict(max_sessions_per_address=0), dict(max_offers_per_minute=0),
                dict(max_messages_per_second=0.0), dict(frame_deadline_s=-1.0)):
        with pytest.raises(ValueError):
            SessionLimits(**bad)  # type: ignore[arg-type]
