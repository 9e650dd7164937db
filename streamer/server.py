"""``tricam serve``: the live server — static client, ``/ws`` signalling, ``/upload``, ``/healthz``.

:func:`create_app` builds the aiohttp application from an engine, so tests and the
benchmark can run the real server with their own engine, sinks or control target;
:func:`serve` runs it on a uvloop loop until SIGINT/SIGTERM; :func:`run` is the command.
Who may act on it (``/ws``, ``/upload``) is ``streamer.auth``'s business.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamer.auth import AccessPolicy, add_access_arguments, page_url, policy_from_args
from streamer.vcam import add_vcam_arguments

if TYPE_CHECKING:  # heavy imports stay inside functions so `tricam --help` is instant
    from aiohttp import web

    from engine.api import Engine
    from streamer.contracts import FrameSink, StyleTarget
    from streamer.session import SessionLimits
    from streamer.uploads import UploadLimits, UploadStore

log = logging.getLogger(__name__)

DESCRIPTION = "Run the live server: browser over WebRTC, optional virtual camera."
DEFAULT_CLIENT_DIR = Path(__file__).resolve().parent.parent / "client"


def _ip(text: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--ice-host needs an IP address, got {text!r}") from None


def _positive_mb(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1024:
        raise argparse.ArgumentTypeError(f"--max-upload-mb needs a size in MB between 0 and 1024, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    parser.add_argument("--bundle", type=Path, default=None, help="model bundle directory (default: the tricam-core bundle shipped in engine/assets/core-tiny)")
    parser.add_argument("--device", default="cpu", help="engine device: cpu or cuda[:N] (default cpu)")
    parser.add_argument("--max-sessions", type=int, default=4, help="concurrent sessions allowed (default 4)")
    parser.add_argument("--workers", type=int, default=None,
                        help="engine worker threads shared by sessions (default: min(max-sessions, CPUs))")
    parser.add_argument("--ice-host", dest="ice_hosts", action="append", type=_ip, default=[], metavar="ADDR",
                        help="offer only this address as an ICE host candidate (repeatable; "
                             "e.g. 127.0.0.1 to keep calls on loopback). Default: every interface address "
                             "except loopback, as aioice chooses")
    parser.add_argument("--client-dir", type=Path, default=DEFAULT_CLIENT_DIR,
                        help=f"static web client to serve at / (default {DEFAULT_CLIENT_DIR})")
    parser.add_argument("--max-upload-mb", type=_positive_mb, default=8.0, metavar="MB",
                        help="largest reference photo POST /upload accepts (default 8)")
    add_access_arguments(parser)
    add_limit_arguments(parser)
    add_vcam_arguments(parser, flag_help="also send edited frames to a virtual camera", with_session=True)


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not value > 0:
            raise argparse.ArgumentTypeError(f"needs a positive {kind.__name__}, got {text!r}")
        return value

    return parse


def add_limit_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Per-client limits and the frame deadline (``tricam serve``; ``tricam cam`` takes the deadline)."""
    from streamer.session import SessionLimits

    d = SessionLimits()
    parser.add_argument("--max-sessions-per-address", type=_positive(int), default=d.max_sessions_per_address,
                        metavar="N", help=f"websockets one client address may hold (default {d.max_sessions_per_address})")
    parser.add_argument("--max-offers-per-minute", type=_positive(int), default=d.max_offers_per_minute,
                        metavar="N", help=f"offers one session may make a minute (default {d.max_offers_per_minute})")
    parser.add_argument("--max-messages-per-second", type=_positive(float), default=d.max_messages_per_second,
                        metavar="R", help=f"websocket messages a session may send a second, bursts of twice that "
                                          f"(default {d.max_messages_per_second:g})")
    add_deadline_argument(parser)


def add_deadline_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    from streamer.pipeline import DEFAULT_DEADLINE_S

    parser.add_argument("--frame-deadline", type=_positive(float), default=DEFAULT_DEADLINE_S, metavar="S",
                        help="a frame still in the engine after S seconds is reported to the session and "
                             f"frames pass through until it returns (default {DEFAULT_DEADLINE_S:g})")


def limits_from_args(args: argparse.Namespace) -> SessionLimits:
    from streamer.session import SessionLimits

    return SessionLimits(
        max_sessions_per_address=args.max_sessions_per_address, max_offers_per_minute=args.max_offers_per_minute,
        max_messages_per_second=args.max_messages_per_second, frame_deadline_s=args.frame_deadline,
    )


def create_app(
    engine: Engine,
    *,
    client_dir: Path | None = DEFAULT_CLIENT_DIR,
    max_sessions: int = 4,
    ice_hosts: Sequence[str] = (),
    workers: int | None = None,
    sinks: Sequence[FrameSink] = (),
    control: StyleTarget | None = None,
    access: AccessPolicy | None = None,
    uploads: UploadStore | None = None,
    upload_limits: UploadLimits | None = None,
    limits: SessionLimits | None = None,
) -> web.Application:
    """The server as an aiohttp application.

    Args:
        engine: styles and per-session engine state.
        client_dir: static files served at ``/`` (None: no client).
        max_sessions: websockets beyond this get a ``busy`` error.
        ice_hosts: the only addresses offered as ICE host candidates (empty: aioice's choice).
        workers: engine worker threads (default ``min(max_sessions, CPUs)``).
        sinks: receive every edited frame of every session; closed on shutdown.
        control: when given, sessions are remote controls of this shared target
            (``tricam cam``) and offers are refused.
        access: who may open ``/ws`` and ``POST /upload`` (Origin, token); static files
            and ``/healthz`` stay public. None: no checks at all (tests).
        uploads: where ``POST /upload`` keeps images (default: a new store), also
            reachable as ``app[streamer.uploads.UPLOADS_KEY]``.
        upload_limits: byte, pixel and rate caps of ``POST /upload`` (default: 8 MiB,
            4096 px a side, 16 MP, 30 a minute per address).
        limits: per-client limits and the frame deadline (default :class:`SessionLimits`).
    """
    from aiohttp import web

    from streamer import ice
    from streamer.auth import access_middleware
    from streamer.session import HUB_KEY, Hub, HubOptions, SessionLimits
    from streamer.uploads import UPLOADS_KEY, UploadLimits, UploadStore, upload_handler

    if max_sessions < 1:
        raise ValueError("max_sessions must be at least 1")
    if workers is None:
        workers = max(1, min(max_sessions, os.cpu_count() or 1))
    options = HubOptions(max_sessions=max_sessions, ice_hosts=ice.validate_hosts(ice_hosts), workers=workers,
                         limits=limits or SessionLimits())
    hub = Hub(engine, options, sinks=sinks, control=control)
    store = uploads if uploads is not None else UploadStore()
    public: set[web.AbstractResource] = set()

    def is_public(request: web.Request) -> bool:
        # Reading public code and counts is harmless; anything else may act.
        return request.method in ("GET", "HEAD") and request.match_info.route.resource in public

    app = web.Application(middlewares=[access_middleware(access, is_public)] if access is not None else [])
    app[HUB_KEY] = hub
    app[UPLOADS_KEY] = store

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response(
            {"ok": True, "mode": hub.mode, "sessions": len(hub.sessions),
             "max_sessions": max_sessions, "styles": engine.registry.names()}
        )

    app.router.add_get("/ws", hub.handle)
    app.router.add_post("/upload", upload_handler(store, upload_limits or UploadLimits()))
    public.add(_public_get(app, "/healthz", healthz))
    if client_dir is not None:
        public.update(_add_client_routes(app, Path(client_dir)))

    async def on_shutdown(app: web.Application) -> None:
        await hub.close()

    async def on_cleanup(app: web.Application) -> None:
        for sink in hub.sinks:
            try:
                sink.close()
            except Exception:
                log.exception("closing sink %r failed", sink)

    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return app


def _add_client_routes(app: web.Application, client_dir: Path) -> list[web.AbstractResource]:
    from aiohttp import web

    root = client_dir.resolve()
    if not (root / "index.html").is_file():
        raise FileNotFoundError(f"no index.html in client directory {root}")
    headers = {"Cache-Control": "no-cache"}

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(root / "index.html", headers=headers)

    async def asset(request: web.Request) -> web.FileResponse:
        # Only plain files directly inside the client directory: no traversal, no listing;
        # resolve() follows symlinks, so one pointing outside lands elsewhere and is refused.
        path = (root / request.match_info["name"]).resolve()
        if path.parent != root or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers=headers)

    # No leading dot: ".", ".." and dotfiles (.env, .git) are never assets.
    return [_public_get(app, "/", index), _public_get(app, "/{name:[A-Za-z0-9_-][A-Za-z0-9_.-]*}", asset)]


def _public_get(app: web.Application, path: str, handler: Any) -> web.AbstractResource:
    """Add a GET (and HEAD) route; its resource is what the access check exempts."""
    resource = app.router.add_get(path, handler).resource
    assert resource is not None  # a route added through the router always has one
    return resource


async def serve_app(app: web.Application, host: str, port: int, stop: asyncio.Event | None = None) -> None:
    """Serve ``app`` until ``stop`` is set or SIGINT/SIGTERM arrives, then shut down gracefully."""
    from aiohttp import web

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread / not supported
            pass
    from streamer.auth import token_safe_access_logger

    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=5.0,
                           access_log_class=token_safe_access_logger())
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        log.info("serving on http://%s:%d", host, port)
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()  # on_shutdown closes peers and engine sessions; on_cleanup the sinks
        for sig in installed:
            loop.remove_signal_handler(sig)


def serve(app: web.Application, host: str, port: int) -> None:
    """Run :func:`serve_app` on a uvloop event loop (the asyncio default where uvloop is missing)."""
    try:
        import uvloop

        loop_factory: Any = uvloop.new_event_loop
    except ImportError:
        log.warning("uvloop not installed; using the default asyncio event loop")
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve_app(app, host, port))


def run(args: argparse.Namespace) -> int:
    from engine.api import EngineError
    from engine.bundle import BundleError
    from engine.registry import build_engine

    try:
        access, generated = policy_from_args(args, args.host)
    except ValueError as e:  # a bad $TRICAM_TOKEN
        log.error("%s", e)
        return 2
    if access.token is not None and generated is None:
        log.info("clients need the token: open %s?token=...", page_url(args.host, args.port, None))
    sinks: list[FrameSink] = []
    if args.vcam:
        from streamer.vcam import VcamError, sink_from_args

        sink = sink_from_args(args)
        try:
            sink.start()
        except VcamError as e:
            log.error("virtual camera: %s", e)
            return 1
        sinks.append(sink)
    try:
        from streamer.uploads import MIB, UploadLimits

        engine = build_engine(args.bundle, args.device)
        app = create_app(
            engine, client_dir=args.client_dir, max_sessions=args.max_sessions,
            ice_hosts=args.ice_hosts, workers=args.workers, sinks=sinks, access=access,
            upload_limits=UploadLimits(max_bytes=int(args.max_upload_mb * MIB)), limits=limits_from_args(args),
        )
        serve(app, args.host, args.port)
    except (OSError, EngineError, BundleError) as e:  # a taken port, a bad --device or --bundle
        log.error("%s", e)
        return 1
    finally:
        for s in sinks:
            s.close()  # idempotent; on_cleanup has normally closed it already
    return 0
