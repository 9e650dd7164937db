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

from streamer.auth import add_access_arguments
from streamer.server import add_deadline_argument
from streamer.vcam import add_vcam_arguments, parse_size

if TYPE_CHECKING:
    from engine.api import Engine, EngineSession, ProcessedFrame, RGBImage
    from streamer.auth import AccessPolicy
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
    """``tricam cam``'s stream: the shared :class:`~streamer.pipeline.Pipeline` fed by a local
    capture source, on its own thread and event loop; a ``StyleTarget`` for the remote control.

    Args:
        engine: styles and engine state.
        source: a started :class:`~streamer.capture.FrameSource`.
        sinks: receive every edited frame (virtual camera, preview).
        style, intensity: the starting choice (validated here).
        max_frames, max_seconds: stop after this many edited frames / seconds (None: run on).
        deadline_s: a frame still in the engine after this long is reported and frames pass
            through meanwhile (the same policy as ``tricam serve``).
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
        deadline_s: float | None = None,
    ) -> None:
        from streamer.pipeline import DEFAULT_DEADLINE_S, Pipeline

        self.registry = engine.registry
        self._session: EngineSession = engine.open_session()
        self.pipeline = Pipeline(SESSION_ID, self.registry, self._session, sinks=sinks,
                                 style=style, intensity=intensity)
        self.media_stats: SessionStats = self.pipeline.media_stats
        self.source = source
        self.max_frames = max_frames
        self.max_seconds = max_seconds
        self.deadline_s = DEFAULT_DEADLINE_S if deadline_s is None else deadline_s
        self.done = threading.Event()
        self.error: str | None = None
        """Why the stream stopped on its own (the input failed, a sink failed); None otherwise."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- StyleTarget -----------------------------------------------------------------------

    def set_style(self, style: str, intensity: float) -> None:
        if (style, intensity) != self.pipeline.current():
            log.info("style -> %s (%.2f)", style, intensity)
        self.pipeline.set_style(style, intensity)

    def current(self) -> tuple[str, float]:
        return self.pipeline.current()

    def stats(self) -> dict[str, Any]:
        figures = self.pipeline.stats()
        figures["dropped"] = self.source.dropped  # the capture mailbox is where frames are skipped
        return figures

    @property
    def errors(self) -> int:
        return self.pipeline.errors

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
        try:
            asyncio.run(self._main())
        except BaseException as e:  # never end the output without a word
            log.exception("the frame pipeline stopped")
            self.error = self.error or f"the frame pipeline stopped: {e}"
        finally:
            self.done.set()

    async def _main(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from aiortc.mediastreams import MediaStreamError

        from streamer.pipeline import run_frames

        loop = asyncio.get_running_loop()
        started = time.monotonic()
        stats = self.media_stats

        async def take() -> tuple[tuple[RGBImage, float], float]:
            while True:
                sink_error = self.pipeline.check_sinks()
                if sink_error is not None:
                    self.error = f"an output failed, so tricam cam stops: {sink_error}"
                    raise MediaStreamError
                if self._stop.is_set():
                    raise MediaStreamError
                if self.max_seconds is not None and time.monotonic() - started >= self.max_seconds:
                    raise MediaStreamError
                if self.max_frames is not None and stats.frames_out >= self.max_frames:
                    raise MediaStreamError
                got = await loop.run_in_executor(None, self.source.get, 0.2)
                if got is None:
                    if self.source.ended:
                        self.error = self.source.error
                        raise MediaStreamError
                    continue
                stats.frame_in()
                return got, stats.now()

        def work(item: tuple[RGBImage, float]) -> tuple[tuple[RGBImage, float], ProcessedFrame | None]:
            out, result = self.pipeline.process_rgb(*item)
            return (out, item[1]), result

        def deliver(item: tuple[RGBImage, float], received_at: float, result: ProcessedFrame | None) -> None:
            self.pipeline.frame_out(received_at, result)

        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tricam-engine")
        try:
            await run_frames(self.pipeline, take, work, self.pipeline.passthrough_rgb, deliver,
                             executor=executor, deadline_s=self.deadline_s)
        finally:
            executor.shutdown(wait=False)  # a style stuck past its deadline must not hold the exit

    def process(self, frame: RGBImage, pts_s: float) -> RGBImage:
        """Edit one frame and hand it to the sinks, synchronously (tests, tools)."""
        self.media_stats.frame_in()
        received = self.media_stats.now()
        out, result = self.pipeline.process_rgb(frame, pts_s)
        self.pipeline.frame_out(received, result)
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
    access: AccessPolicy | None = None
    """Who may use the remote control (Origin, token); None: no checks (tests)."""
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
        from streamer.auth import token_safe_access_logger
        from streamer.session import HUB_KEY

        app = create_app(self.engine, client_dir=client_dir, control=self.pipeline, max_sessions=4, workers=1,
                         access=self.access)
        # The page in control mode is told when the shared pipeline fails, like a call's page.
        self.pipeline.pipeline.on_error = app[HUB_KEY].post_error
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2.0,
                               access_log_class=token_safe_access_logger())
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
    add_access_arguments(control)
    add_deadline_argument(parser)
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
    access: AccessPolicy | None = None
    generated: str | None = None
    if not args.no_control:
        from streamer.auth import policy_from_args

        try:
            access, generated = policy_from_args(args, args.host)
        except ValueError as e:  # a bad $TRICAM_TOKEN
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
            max_frames=args.frames, max_seconds=args.seconds, deadline_s=args.frame_deadline,
        )
        if not args.no_control:
            from streamer.auth import page_url

            server = ControlServer(pipeline, engine, args.host, args.port, access=access)
            server.start()
            assert server.port_bound is not None
            # A token the person chose is theirs to know; only a generated one is printed.
            log.info("remote control at %s", page_url(args.host, server.port_bound, generated))
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
