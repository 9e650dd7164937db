"""``tricam cam``: local webcam or video file → engine → virtual camera, no browser needed.

Three threads do the work: the capture thread (newest-frame mailbox), the pipeline thread
(engine + sinks) and, when asked, the virtual camera's own sender. The live server's app
runs in control mode on a fourth thread, so the browser page is a remote control of this
pipeline: style picker and stats, without sending its own camera.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamer.vcam import add_vcam_arguments, parse_size

if TYPE_CHECKING:
    from engine.api import Engine, EngineSession, RGBImage
    from streamer.capture import FrameSource
    from streamer.contracts import FrameSink
    from streamer.stats import SessionStats

log = logging.getLogger(__name__)

DESCRIPTION = (
    "Local webcam or video file -> engine -> virtual camera, no browser needed. The web page "
    "at http://HOST:PORT/ becomes a remote control (style and stats)."
)
SESSION_ID = "local"
"""The one session id this pipeline gives its frames (sinks follow it)."""


class CamPipeline:
    """Takes the newest captured frame, edits it, hands it to the sinks; a ``StyleTarget``.

    Args:
        engine: styles and engine state.
        source: a started :class:`~streamer.capture.FrameSource`.
        sinks: receive every edited frame (virtual camera, preview).
        style, intensity: the starting choice (validated here).
        max_frames, max_seconds: stop after this many edited frames / seconds (None: run on).
    """

    def __init__(
        self,
        engine: Engine,
        source: FrameSource,
        sinks: Sequence[FrameSink] = (),
        *,
        style: str | None = None,
        intensity: float | None = None,
        max_frames: int | None = None,
        max_seconds: float | None = None,
    ) -> None:
        from streamer.stats import SessionStats

        self.registry = engine.registry
        names = self.registry.names()
        if not names:
            raise ValueError("the engine has no styles")
        first = style if style is not None else names[0]
        self._choice = (first, self.registry.validate(first, intensity))
        self._session: EngineSession = engine.open_session()
        self.source = source
        self.sinks = tuple(sinks)
        self.max_frames = max_frames
        self.max_seconds = max_seconds
        self.media_stats: SessionStats = SessionStats()
        self.done = threading.Event()
        self.error: str | None = None
        self.errors = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- StyleTarget -----------------------------------------------------------------------

    def set_style(self, style: str, intensity: float) -> None:
        with self._lock:
            if (style, intensity) != self._choice:
                log.info("style -> %s (%.2f)", style, intensity)
            self._choice = (style, intensity)

    def current(self) -> tuple[str, float]:
        with self._lock:
            return self._choice

    def stats(self) -> dict[str, Any]:
        style, intensity = self.current()
        figures = self.media_stats.snapshot()
        figures["dropped"] = self.source.dropped  # the capture mailbox is where frames are skipped
        return {**figures, "style": style, "intensity": intensity}

    # -- running -----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tricam-pipeline", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10.0)
        self._session.close()

    def _run(self) -> None:
        started = time.monotonic()
        try:
            while not self._stop.is_set():
                if self.max_seconds is not None and time.monotonic() - started >= self.max_seconds:
                    break
                got = self.source.get(timeout=0.2)
                if got is None:
                    if self.source.ended:
                        self.error = self.source.error
                        break
                    continue
                self.process(*got)
                if self.max_frames is not None and self.media_stats.frames_out >= self.max_frames:
                    break
        finally:
            self.done.set()

    def process(self, frame: RGBImage, pts_s: float) -> RGBImage:
        """Edit one frame and hand it to the sinks. Engine failures pass the frame through."""
        self.media_stats.frame_in()
        received = self.media_stats.now()
        style, intensity = self.current()
        engine_ms: float | None = None
        faces: int | None = None
        too_small = 0
        try:
            result = self._session.process(frame, style=style, intensity=intensity, timestamp=pts_s)
            out, engine_ms, faces, too_small = result.image, result.engine_ms, result.faces, result.too_small
        except Exception:
            # One bad frame must not end the output; say so, but not 30 times a second.
            self.errors += 1
            if self.errors in (1, 10, 100) or self.errors % 1000 == 0:
                log.exception("engine failed on a frame (%d so far); passing it through", self.errors)
            out = frame
        for sink in self.sinks:
            sink.submit(SESSION_ID, out, pts_s)
        self.media_stats.frame_out(received_at=received, engine_ms=engine_ms, faces=faces, too_small=too_small)
        return out


class PreviewSink:
    """Keeps the newest edited frame for a window the main thread shows (GUI toolkits want it)."""

    def __init__(self, title: str = "tricam") -> None:
        check_display()
        import cv2

        self._cv2: Any = cv2
        self.title = title
        self._lock = threading.Lock()
        self._frame: RGBImage | None = None
        self._closed = False

    def submit(self, session_id: str, frame: RGBImage, pts_s: float) -> None:
        with self._lock:
            self._frame = frame

    def session_closed(self, session_id: str) -> None:
        pass

    def pump(self) -> bool:
        """Show the newest frame and handle window events; False when the user closed it (q/Esc)."""
        with self._lock:
            frame, self._frame = self._frame, None
        if self._closed:
            return False
        if frame is not None:
            self._cv2.imshow(self.title, frame[..., ::-1])
        key = self._cv2.waitKey(1) & 0xFF
        return key not in (ord("q"), 27)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._cv2.destroyWindow(self.title)
            except Exception:
                log.debug("closing the preview window failed", exc_info=True)


def check_display() -> None:
    """Raise ``RuntimeError`` with a clear reason when no window can be shown here."""
    if platform.system() == "Linux" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise RuntimeError("--preview needs a display (no DISPLAY or WAYLAND_DISPLAY is set); drop --preview")
    try:
        import cv2  # noqa: F401  (opencv arrives with mediapipe)
    except ImportError as e:
        raise RuntimeError(f"--preview needs OpenCV with GUI support ({e})") from e


@dataclass
class ControlServer:
    """The issue-2 server app in control mode, on its own thread and event loop."""

    pipeline: CamPipeline
    engine: Engine
    host: str
    port: int
    client_dir: Path | None = None
    port_bound: int | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _thread: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> None:
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            try:
                asyncio.run(self._serve(ready))
            except BaseException as e:  # reported to the starting thread
                failure.append(e)
                ready.set()

        self._thread = threading.Thread(target=main, name="tricam-control", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("the control server did not start in time")
        if failure:
            raise failure[0]

    async def _serve(self, ready: threading.Event) -> None:
        from aiohttp import web

        from streamer.server import DEFAULT_CLIENT_DIR, create_app

        client_dir: Path | None = self.client_dir or DEFAULT_CLIENT_DIR
        if client_dir is not None and not (client_dir / "index.html").is_file():
            log.warning("no web client in %s; serving only /ws and /healthz", client_dir)
            client_dir = None
        app = create_app(self.engine, client_dir=client_dir, control=self.pipeline, max_sessions=4, workers=1)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
            self.port_bound = int(runner.addresses[0][1])
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            ready.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port_bound}/"

    def close(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # the loop already finished
                pass
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=10.0)


# ---------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", "-i", default="0", metavar="SRC",
                        help="camera number (0), device (/dev/video0), 'video=NAME' (Windows) or a video "
                             "file, played at its own rate and looped (default 0)")
    parser.add_argument("--input-size", type=parse_size, default=None, metavar="WxH",
                        help="ask the camera for this size (default: the camera's own)")
    parser.add_argument("--input-fps", type=float, default=None, help="ask the camera for this rate")
    parser.add_argument("--style", default=None, help="starting style (default: the first, 'none')")
    parser.add_argument("--intensity", type=float, default=None, help="starting intensity (default: the style's)")
    parser.add_argument("--bundle", type=Path, default=None, help="model bundle directory (default: the tricam-core bundle shipped in engine/assets/core-tiny)")
    parser.add_argument("--device", default="cpu", help="engine device: cpu or cuda[:N] (default cpu)")
    parser.add_argument("--preview", action="store_true", help="show the edited video in a local window")
    stop = parser.add_mutually_exclusive_group()
    stop.add_argument("--frames", type=int, default=None, metavar="N", help="stop after N edited frames")
    stop.add_argument("--seconds", type=float, default=None, metavar="T", help="stop after T seconds")
    control = parser.add_argument_group("remote control (the web page in control mode)")
    control.add_argument("--host", default="127.0.0.1", help="control server address (default 127.0.0.1)")
    control.add_argument("--port", type=int, default=8080, help="control server port; 0 picks a free one (default 8080)")
    control.add_argument("--no-control", action="store_true", help="run without the control server")
    add_vcam_arguments(parser, flag_help="send the edited video to a virtual camera", with_session=False)


def run(args: argparse.Namespace) -> int:
    from engine.api import EngineError
    from engine.bundle import BundleError
    from engine.registry import build_engine
    from streamer.capture import CaptureError, FrameSource
    from streamer.vcam import VcamError, sink_from_args

    if args.frames is not None and args.frames <= 0 or args.seconds is not None and args.seconds <= 0:
        log.error("--frames and --seconds must be positive")
        return 2
    try:
        engine = build_engine(args.bundle, args.device)
    except (EngineError, BundleError) as e:
        log.error("%s", e)
        return 2
    try:
        engine.registry.validate(args.style or engine.registry.names()[0], args.intensity)
    except EngineError as e:
        log.error("%s", e)
        return 2

    sinks: list[Any] = []
    preview: PreviewSink | None = None
    source: FrameSource | None = None
    pipeline: CamPipeline | None = None
    server: ControlServer | None = None
    stop = threading.Event()
    previous_sigterm = None
    if threading.current_thread() is threading.main_thread():
        previous_sigterm = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        if args.preview:
            try:
                preview = PreviewSink()
            except RuntimeError as e:
                log.error("%s", e)
                return 1
            sinks.append(preview)
        if args.vcam:
            vcam = sink_from_args(args)
            sinks.append(vcam)
            vcam.start()
        if not args.vcam and not args.preview:
            log.warning("neither --vcam nor --preview: frames are edited but shown nowhere")
        source = FrameSource(args.input, size=args.input_size, fps=args.input_fps)
        pipeline = CamPipeline(
            engine, source, sinks, style=args.style, intensity=args.intensity,
            max_frames=args.frames, max_seconds=args.seconds,
        )
        if not args.no_control:
            server = ControlServer(pipeline, engine, args.host, args.port)
            server.start()
            log.info("remote control at %s", server.url)
        # Capture starts last, so no frames are skipped while the rest comes up.
        source.start()
        pipeline.start()
        while not stop.is_set() and not pipeline.done.wait(0.01 if preview else 0.2):
            if preview is not None and not preview.pump():
                break
        if pipeline.error:
            log.error("%s", pipeline.error)
            return 1
        log.info("stopped after %d frames", pipeline.media_stats.frames_out)
        return 0
    except (VcamError, CaptureError) as e:
        log.error("%s", e)
        return 1
    except OSError as e:  # e.g. the control port is taken
        log.error("control server: %s", e)
        return 1
    finally:
        if server is not None:
            server.close()
        if pipeline is not None:
            pipeline.stop()
        if source is not None:
            source.close()
        for sink in sinks:
            sink.close()
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
