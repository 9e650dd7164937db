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
from streamer.media import FilteredTrack, Pipeline, drain

log = logging.getLogger(__name__)

STATS_PERIOD_S = 1.0
CONTROL_MODE_MESSAGE = (
    "This server runs in control mode (tricam cam): the camera is local to the server, so "
    "there is no call to offer; use set_style, list_styles and get_stats."
)


@dataclass(frozen=True)
class HubOptions:
    max_sessions: int = 4
    ice_hosts: tuple[str, ...] = ()
    """Only these addresses are offered as ICE host candidates (empty: aioice's choice)."""
    workers: int = 2
    """Engine worker threads shared by all sessions."""


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
        self._closed = False

    @property
    def mode(self) -> p.Mode:
        return "control" if self.control is not None else "webrtc"

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        # Accept messages a little over the protocol limit so an oversized one gets a
        # `too_large` reply; aiohttp itself closes (1009) only beyond this.
        ws = web.WebSocketResponse(max_msg_size=4 * p.MAX_MESSAGE_BYTES, heartbeat=20.0, timeout=2.0)
        await ws.prepare(request)
        if self._closed or len(self.sessions) >= self.options.max_sessions:
            await ws.send_str(p.encode(p.error(
                "busy", f"The server is at its limit of {self.options.max_sessions} sessions; try again later."
            )))
            await ws.close(code=1013, message=b"busy")
            return ws
        session = Session(secrets.token_hex(6), ws, self)
        self.sessions[session.id] = session
        try:
            await session.run()
        finally:
            await session.close()
            self.sessions.pop(session.id, None)
        return ws

    async def broadcast_state(self, style: str, intensity: float, *, skip: Session | None = None) -> None:
        """In control mode, tell every remote control about a change one of them made."""
        for s in list(self.sessions.values()):
            if s is not skip:
                await s.send(p.state(style, intensity))

    async def close(self) -> None:
        """Graceful shutdown: end every session (peers, engine sessions), then the workers."""
        self._closed = True
        await asyncio.gather(*(s.shutdown() for s in list(self.sessions.values())), return_exceptions=True)
        # Waiting for an in-flight frame must not block the loop that is shutting down.
        await asyncio.get_running_loop().run_in_executor(None, self.executor.shutdown)


HUB_KEY = web.AppKey("tricam_hub", Hub)
"""Where :func:`streamer.server.create_app` keeps the hub (tests read the session registry)."""


class Session:
    def __init__(self, session_id: str, ws: web.WebSocketResponse, hub: Hub) -> None:
        self.id = session_id
        self.ws = ws
        self.hub = hub
        self.registry = hub.engine.registry
        self.pipeline: Pipeline | None = None
        self.target: StyleTarget
        if hub.control is not None:
            self.target = hub.control
        else:
            self.pipeline = Pipeline(session_id, self.registry, hub.engine.open_session(), sinks=hub.sinks)
            self.target = self.pipeline
        self._call: Call | None = None
        self._send_lock = asyncio.Lock()
        self._pusher: asyncio.Task[None] | None = None
        self._closed = False

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

    async def run(self) -> None:
        log.info("session %s: open (%s mode)", self.id, self.hub.mode)
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
            self.target.set_style(style, intensity)
            if self.hub.control is not None:
                await self.hub.broadcast_state(style, intensity, skip=self)
            return p.state(style, intensity, msg.id)
        if isinstance(msg, p.ListStyles):
            return p.styles(self.registry.infos(), self.target.current()[0], msg.id)
        if isinstance(msg, p.GetStats):
            return p.stats(self.target.stats(), msg.id)
        if isinstance(msg, p.Offer):
            if self.pipeline is None:
                raise p.ProtocolError("bad_message", CONTROL_MODE_MESSAGE, msg.id)
            return p.answer(await self._negotiate(msg.sdp, msg.id), msg.id)
        raise AssertionError(f"unhandled message {msg!r}")

    async def _push_stats(self) -> None:
        while True:
            await asyncio.sleep(STATS_PERIOD_S)
            if self.hub.control is not None or (self.pc is not None and self.pc.connectionState == "connected"):
                await self.send(p.stats(self.target.stats()))

    # --- WebRTC ----------------------------------------------------------------------
    @property
    def pc(self) -> RTCPeerConnection | None:
        return self._call.pc if self._call is not None else None

    async def _negotiate(self, sdp: str, request_id: Any) -> str:
        assert self.pipeline is not None
        call = Call(self.pipeline, self.hub.executor)
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


class Call:
    """One peer connection of a session and the tasks feeding it."""

    def __init__(self, pipeline: Pipeline, executor: Executor) -> None:
        # No STUN/TURN servers: aiortc's default would contact a public STUN server.
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.tracks: list[FilteredTrack] = []
        self.drains: list[asyncio.Task[None]] = []
        self._pipeline = pipeline
        self._executor = executor
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            out = FilteredTrack(track, self._pipeline, self._executor)
            self.tracks.append(out)
            self.pc.addTrack(out)
        else:
            self.drains.append(asyncio.ensure_future(drain(track)))

    async def close(self) -> None:
        for t in self.tracks:
            t.stop()
        for d in self.drains:
            d.cancel()
        await self.pc.close()
        await asyncio.gather(*(t.wait_stopped() for t in self.tracks), *self.drains, return_exceptions=True)
