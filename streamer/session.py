"""One websocket = one session: signalling, live commands and stats for one caller.

:class:`Hub` holds what sessions share (engine, worker threads, sinks, the session
registry). :class:`Session` is the thin I/O adapter around ``streamer.protocol``: it reads
messages, lets the pure functions parse and validate them, acts, and replies. In control
mode every session drives one shared ``StyleTarget`` instead of its own peer connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from engine.api import Engine
from streamer import ice
from streamer import protocol as p
from streamer.contracts import FrameSink, StyleTarget
from streamer.media import FilteredTrack, drain
from streamer.pipeline import DEFAULT_DEADLINE_S, FrameError, Pipeline

log = logging.getLogger(__name__)

STATS_PERIOD_S = 1.0
CONTROL_MODE_MESSAGE = (
    "This server runs in control mode (tricam cam): the camera is local to the server, so "
    "there is no call to offer; use set_style, list_styles and get_stats."
)


@dataclass(frozen=True)
class SessionLimits:
    """What one client may ask of the server; beyond it, a clear ``error`` and the session lives."""

    max_sessions_per_address: int = 4
    """Websockets one client address may hold at once (behind a proxy, its address)."""
    max_offers_per_minute: int = 12
    """Offers one session may make in any 60 s (a page reconnecting makes one per attempt)."""
    max_messages_per_second: float = 50.0
    """Sustained message rate per session; bursts up to twice this pass."""
    frame_deadline_s: float = DEFAULT_DEADLINE_S
    """A frame still in the engine after this long is reported; frames pass through meanwhile."""

    def __post_init__(self) -> None:
        if self.max_sessions_per_address < 1 or self.max_offers_per_minute < 1:
            raise ValueError("session limits must allow at least one session and one offer")
        if not (self.max_messages_per_second > 0 and self.frame_deadline_s > 0):
            raise ValueError("the message rate and the frame deadline must be positive")


@dataclass(frozen=True)
class HubOptions:
    max_sessions: int = 4
    ice_hosts: tuple[str, ...] = ()
    """Only these addresses are offered as ICE host candidates (empty: aioice's choice)."""
    workers: int = 2
    """Engine worker threads shared by all sessions."""
    limits: SessionLimits = SessionLimits()


class Hub:
    """Shared state of one server: the engine, worker threads, sinks and live sessions."""

    def __init__(
        self,
        engine: Engine,
        options: HubOptions,
        sinks: Sequence[FrameSink] = (),
        control: StyleTarget | None = None,
    ) -> None:
        self.engine = engine
        self.options = options
        self.sinks = tuple(sinks)
        self.control = control
        self.executor = ThreadPoolExecutor(max_workers=max(1, options.workers), thread_name_prefix="tricam-engine")
        self.sessions: dict[str, Session] = {}
        self.default_choice: tuple[str, float] | None = None
        """Set by a ``scope: server`` style switch: sessions that open later start with it."""
        self._closed = False

    @property
    def mode(self) -> p.Mode:
        return "control" if self.control is not None else "webrtc"

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        # Accept messages a little over the protocol limit so an oversized one gets a
        # `too_large` reply; aiohttp itself closes (1009) only beyond this.
        ws = web.WebSocketResponse(max_msg_size=4 * p.MAX_MESSAGE_BYTES, heartbeat=20.0, timeout=2.0)
        await ws.prepare(request)
        address = request.remote or "?"
        refusal = None
        if self._closed or len(self.sessions) >= self.options.max_sessions:
            refusal = f"The server is at its limit of {self.options.max_sessions} sessions; try again later."
        elif sum(s.address == address for s in self.sessions.values()) >= self.options.limits.max_sessions_per_address:
            refusal = (f"This address already holds {self.options.limits.max_sessions_per_address} sessions, "
                       "the limit per client; close one and try again.")
        if refusal is not None:
            log.info("refused a session from %s: %s", address, refusal)
            await ws.send_str(p.encode(p.error("busy", refusal)))
            await ws.close(code=1013, message=b"busy")
            return ws
        session = Session(secrets.token_hex(6), ws, self, address=address)
        self.sessions[session.id] = session
        try:
            await session.run()
        finally:
            await session.close()
            self.sessions.pop(session.id, None)
        return ws

    async def broadcast_state(self, style: str, intensity: float, *, skip: Session | None = None) -> None:
        """Tell every other session about a change that reached it (control mode, server scope)."""
        for s in list(self.sessions.values()):
            if s is not skip:
                await s.send(p.state(style, intensity))

    def set_style_everywhere(self, style: str, intensity: float) -> None:
        """A ``scope: server`` switch: every live session's style, and the start of later ones."""
        self.default_choice = (style, intensity)
        if self.control is not None:
            self.control.set_style(style, intensity)
        for s in list(self.sessions.values()):
            if s.pipeline is not None:
                s.pipeline.set_style(style, intensity)

    def post_error(self, err: FrameError) -> None:
        """Thread-safe: tell every session (control mode: the shared pipeline failed)."""
        for s in list(self.sessions.values()):
            s.post_error(err)

    async def close(self) -> None:
        """Graceful shutdown: end every session (peers, engine sessions), then the workers."""
        self._closed = True
        await asyncio.gather(*(s.shutdown() for s in list(self.sessions.values())), return_exceptions=True)
        # Waiting for an in-flight frame must not block the loop that is shutting down.
        await asyncio.get_running_loop().run_in_executor(None, self.executor.shutdown)


HUB_KEY = web.AppKey("tricam_hub", Hub)
"""Where :func:`streamer.server.create_app` keeps the hub (tests read the session registry)."""


class Session:
    def __init__(self, session_id: str, ws: web.WebSocketResponse, hub: Hub, *, address: str = "?") -> None:
        self.id = session_id
        self.ws = ws
        self.hub = hub
        self.address = address
        self.registry = hub.engine.registry
        self.pipeline: Pipeline | None = None
        self.target: StyleTarget
        self._loop = asyncio.get_running_loop()
        self._background: set[asyncio.Future[Any]] = set()
        if hub.control is not None:
            self.target = hub.control
        else:
            style, intensity = hub.default_choice or (None, None)
            if style is not None and style not in self.registry:
                style, intensity = None, None
            self.pipeline = Pipeline(session_id, self.registry, hub.engine.open_session(), sinks=hub.sinks,
                                     style=style, intensity=intensity, on_error=self.post_error)
            self.target = self.pipeline
        self._call: Call | None = None
        self._send_lock = asyncio.Lock()
        self._pusher: asyncio.Task[None] | None = None
        self._closed = False
        self._offers: deque[float] = deque()
        self._allowance = 2.0 * hub.options.limits.max_messages_per_second  # token bucket: burst, then rate
        self._allowance_at = time.monotonic()
        self._limited_reported = 0.0
        self.refused = 0
        """Messages refused for rate (counted, answered at most once a second)."""

    # --- I/O -------------------------------------------------------------------------
    async def send(self, msg: dict[str, Any]) -> None:
        if self.ws.closed:
            return
        try:
            text = p.encode(msg)
        except (TypeError, ValueError) as e:  # e.g. a NaN figure from a StyleTarget: not JSON
            log.exception("session %s: cannot encode a %s message", self.id, msg.get("type"))
            text = p.encode(p.error("internal", f"The server could not encode its reply: {e}.", msg.get("id")))
        async with self._send_lock:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_str(text)

    def post_error(self, err: FrameError) -> None:
        """Thread-safe: send a frame-path failure to this session's client as an ``error`` event."""
        def schedule() -> None:
            if self._closed:
                return
            task = asyncio.ensure_future(self.send(p.error(err.code, err.message, style=err.style)))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

        try:
            self._loop.call_soon_threadsafe(schedule)
        except RuntimeError:  # the loop is closed: the session is gone
            pass

    def _rate_ok(self) -> bool:
        """Token bucket over incoming messages; False means refuse this one."""
        rate = self.hub.options.limits.max_messages_per_second
        now = time.monotonic()
        self._allowance = min(2.0 * rate, self._allowance + (now - self._allowance_at) * rate)
        self._allowance_at = now
        if self._allowance >= 1.0:
            self._allowance -= 1.0
            return True
        return False

    async def run(self) -> None:
        log.info("session %s: open (%s mode) from %s", self.id, self.hub.mode, self.address)
        await self.send(p.hello(self.id, self.hub.mode))
        await self.send(p.state(*self.target.current()))
        self._pusher = asyncio.ensure_future(self._push_stats())
        async for msg in self.ws:
            if msg.type == WSMsgType.TEXT:
                raw: str | bytes = msg.data
            elif msg.type == WSMsgType.BINARY:
                raw = msg.data
            else:  # ERROR (e.g. beyond aiohttp's size limit) or CLOSE: the socket is gone
                if msg.type == WSMsgType.ERROR:
                    log.info("session %s: websocket error %s", self.id, self.ws.exception())
                break
            if not await self.handle(raw):
                break

    async def handle(self, raw: str | bytes) -> bool:
        """Act on one message; False once the session should end (``bye``)."""
        if not self._rate_ok():
            self.refused += 1
            now = time.monotonic()
            if now - self._limited_reported >= 1.0:  # answering every flooded message would double the flood
                self._limited_reported = now
                await self.send(p.error(
                    "rate_limited",
                    f"Too many messages (limit {self.hub.options.limits.max_messages_per_second:g} a second); "
                    f"{self.refused} refused so far.",
                ))
            return True
        try:
            msg = p.parse(raw)
            if isinstance(msg, p.Bye):
                return False
            reply = await self._dispatch(msg)
        except p.ProtocolError as e:
            reply = p.from_exception(e)
        except Exception as e:  # a bug here must not take the call down with it
            log.exception("session %s: failed to handle a message", self.id)
            reply = p.error("internal", f"The server failed to handle that message: {type(e).__name__}.")
        await self.send(reply)
        return True

    async def _dispatch(self, msg: p.ClientMessage) -> dict[str, Any]:
        if isinstance(msg, p.SetStyle):
            style, intensity = p.validate_style(self.registry, msg)
            if msg.scope == "server":
                self.hub.set_style_everywhere(style, intensity)
            else:
                self.target.set_style(style, intensity)
            if self.hub.control is not None or msg.scope == "server":
                await self.hub.broadcast_state(style, intensity, skip=self)
            return p.state(style, intensity, msg.id)
        if isinstance(msg, p.ListStyles):
            return p.styles(self.registry.infos(), self.target.current()[0], msg.id)
        if isinstance(msg, p.GetStats):
            return p.stats(self.target.stats(), msg.id)
        if isinstance(msg, p.Offer):
            if self.pipeline is None:
                raise p.ProtocolError("bad_message", CONTROL_MODE_MESSAGE, msg.id)
            self._check_offer_rate(msg.id)
            check_offer_tracks(msg.sdp, msg.id)
            return p.answer(await self._negotiate(msg.sdp, msg.id), msg.id)
        raise AssertionError(f"unhandled message {msg!r}")

    async def _push_stats(self) -> None:
        while True:
            await asyncio.sleep(STATS_PERIOD_S)
            if self.hub.control is not None or (self.pc is not None and self.pc.connectionState == "connected"):
                await self.send(p.stats(self.target.stats()))

    def _check_offer_rate(self, request_id: Any) -> None:
        limit = self.hub.options.limits.max_offers_per_minute
        now = time.monotonic()
        while self._offers and now - self._offers[0] > 60.0:
            self._offers.popleft()
        if len(self._offers) >= limit:
            wait = 60.0 - (now - self._offers[0])
            raise p.ProtocolError(
                "rate_limited", f"Too many offers (limit {limit} a minute); try again in {wait:.0f} s.", request_id
            )
        self._offers.append(now)

    # --- WebRTC ----------------------------------------------------------------------
    @property
    def pc(self) -> RTCPeerConnection | None:
        return self._call.pc if self._call is not None else None

    async def _negotiate(self, sdp: str, request_id: Any) -> str:
        assert self.pipeline is not None
        call = Call(self.pipeline, self.hub.executor, deadline_s=self.hub.options.limits.frame_deadline_s)
        try:
            await call.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            answer = await call.pc.createAnswer()
            with ice.host_addresses(self.hub.options.ice_hosts):
                await call.pc.setLocalDescription(answer)
        except Exception as e:
            # A bad offer leaves the call in progress (if any) untouched.
            log.info("session %s: offer refused: %s", self.id, e)
            await call.close()
            raise p.ProtocolError("bad_sdp", f"Could not use that offer: {e or type(e).__name__}.", request_id) from None
        if self._call is not None:  # a second offer replaces the call (client reconnect)
            await self._close_call()
            await asyncio.get_running_loop().run_in_executor(None, self.pipeline.engine_session.reset)
        self._call = call
        call.pc.on("connectionstatechange", self._on_peer_state)
        return call.pc.localDescription.sdp

    async def _on_peer_state(self) -> None:
        call = self._call
        if call is None:
            return
        log.info("session %s: peer connection %s", self.id, call.pc.connectionState)
        if call.pc.connectionState == "failed":
            await self._close_call()

    async def _close_call(self) -> None:
        call, self._call = self._call, None
        if call is not None:
            await call.close()

    # --- lifecycle ---------------------------------------------------------------------
    async def shutdown(self) -> None:
        """Server shutdown: say goodbye and close the websocket; :meth:`close` frees the rest."""
        await self.ws.close(code=1001, message=b"server shutting down")
        await self.close()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pusher is not None:
            self._pusher.cancel()
            await asyncio.gather(self._pusher, return_exceptions=True)
        for task in list(self._background):
            task.cancel()
        await self._close_call()
        if not self.ws.closed:
            await self.ws.close()
        if self.pipeline is not None:
            # close() takes the engine session's lock, which an in-flight frame may hold.
            await asyncio.get_running_loop().run_in_executor(None, self.pipeline.engine_session.close)
            for sink in self.hub.sinks:
                try:
                    sink.session_closed(self.id)
                except Exception:
                    log.exception("session %s: sink %r failed on session_closed", self.id, sink)
        log.info("session %s: closed", self.id)


MAX_MEDIA_SECTIONS = 4
"""m= sections an offer may carry (one video, plus audio or data a browser may add)."""


def check_offer_tracks(sdp: str, request_id: Any = None) -> None:
    """Refuse an offer with more than one video track (or many media sections), or one
    whose media lack the DTLS fingerprint and ICE credentials a call needs, before any of
    it is negotiated: no extra track is ever decoded, and aiortc never starts a connection
    that can only fail later in a background task."""
    lines = [line.strip() for line in sdp.splitlines()]
    kinds = [line[2:].split(" ", 1)[0] for line in lines if line.startswith("m=")]
    if kinds.count("video") > 1:
        raise p.ProtocolError(
            "too_many_tracks", f"An offer may carry one video track; this one has {kinds.count('video')}.",
            request_id,
        )
    if len(kinds) > MAX_MEDIA_SECTIONS:
        raise p.ProtocolError(
            "too_many_tracks", f"An offer may carry at most {MAX_MEDIA_SECTIONS} media sections; "
            f"this one has {len(kinds)}.", request_id,
        )
    # Session-level attributes apply to every media section unless one overrides them.
    sections: list[list[str]] = [[]]
    for line in lines:
        if line.startswith("m="):
            sections.append([line])
        else:
            sections[-1].append(line)
    session, media = sections[0], sections[1:]
    for needed, label in (("a=fingerprint:", "a DTLS fingerprint"), ("a=ice-ufrag:", "ICE credentials"),
                          ("a=ice-pwd:", "ICE credentials")):
        at_session = any(line.startswith(needed) for line in session)
        for section in media:
            port = section[0].split(" ")[1] if len(section[0].split(" ")) > 1 else ""
            if port == "0":  # a rejected section needs nothing
                continue
            if not at_session and not any(line.startswith(needed) for line in section):
                raise p.ProtocolError(
                    "bad_sdp", f"Could not use that offer: its {section[0].split(' ')[0][2:]} section has no "
                    f"{label}.", request_id,
                )


class Call:
    """One peer connection of a session and the tasks feeding it."""

    def __init__(self, pipeline: Pipeline, executor: Executor, *, deadline_s: float = DEFAULT_DEADLINE_S) -> None:
        # No STUN/TURN servers: aiortc's default would contact a public STUN server.
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.tracks: list[FilteredTrack] = []
        self.drains: list[asyncio.Task[None]] = []
        self._pipeline = pipeline
        self._executor = executor
        self._deadline_s = deadline_s
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video" and not self.tracks:
            out = FilteredTrack(track, self._pipeline, self._executor, deadline_s=self._deadline_s)
            self.tracks.append(out)
            self.pc.addTrack(out)
        else:  # audio, or a video track beyond the first (the offer check refuses those): never processed
            self.drains.append(asyncio.ensure_future(drain(track)))

    async def close(self) -> None:
        for t in self.tracks:
            t.stop()
        for d in self.drains:
            d.cancel()
        await self.pc.close()
        await asyncio.gather(*(t.wait_stopped() for t in self.tracks), *self.drains, return_exceptions=True)
