"""Local video input for ``tricam cam``: a webcam or a video file, read on its own thread.

The reader thread decodes into a one-slot mailbox: the consumer always gets the newest
frame and frames it was too slow for are counted as dropped, never queued, so a slow
style adds no latency. A video file stands in for a camera: it plays at its own frame
rate and loops, with timestamps that keep increasing across loops.
"""

from __future__ import annotations

import logging
import platform
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.api import RGBImage

log = logging.getLogger(__name__)


class CaptureError(RuntimeError):
    """The input cannot be opened or read; the message says which and why."""


@dataclass(frozen=True)
class Source:
    """Where frames come from, resolved from the ``--input`` text."""

    url: str
    format: str | None
    """PyAV/FFmpeg input format (``v4l2``, ``avfoundation``, ``dshow``); None for a file."""
    is_file: bool


def resolve(spec: str, system: str | None = None) -> Source:
    """``0``, ``/dev/video2``, ``video=Integrated Camera`` (Windows) or a file path → :class:`Source`."""
    system = system or platform.system()
    spec = spec.strip()
    if re.fullmatch(r"\d+", spec):
        if system == "Linux":
            return Source(f"/dev/video{int(spec)}", "v4l2", False)
        if system == "Darwin":
            return Source(f"{int(spec)}:none", "avfoundation", False)  # video index, no audio
        if system == "Windows":
            raise CaptureError(
                "DirectShow opens cameras by name, not number: pass --input 'video=NAME' "
                "(list them with `ffmpeg -list_devices true -f dshow -i dummy`)"
            )
        raise CaptureError(f"no camera capture support for {system}; pass a video file instead")
    if spec.startswith("/dev/video"):
        return Source(spec, "v4l2", False)
    if spec.startswith("video="):
        return Source(spec, "dshow", False)
    return Source(spec, None, True)


class FrameSource:
    """Reads ``spec`` on a daemon thread into a newest-frame mailbox.

    Args:
        spec: see :func:`resolve`.
        size: ask a camera for this ``(width, height)``; ignored for files.
        fps: ask a camera for this rate; ignored for files (they play at their own rate).
        loop: replay a file from the start when it ends (otherwise the source ends).
        realtime: pace a file at its frame rate, as a camera would deliver it.
    """

    def __init__(
        self,
        spec: str,
        *,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        loop: bool = True,
        realtime: bool = True,
    ) -> None:
        self.source = resolve(spec)
        self.size = size
        self.fps = fps
        self.loop = loop
        self.realtime = realtime
        self._container: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._frame: RGBImage | None = None
        self._pts = 0.0
        self._seq = 0
        self._taken_seq = 0
        self._ended = False
        self.error: str | None = None
        self.captured = 0
        self.dropped = 0

    # -- lifecycle ----------------------------------------------------------------------

    def _open(self) -> Any:
        import av

        src = self.source
        if src.is_file:
            path = Path(src.url)
            if not path.exists():
                raise CaptureError(f"input file {path} does not exist")
            if not path.is_file():
                raise CaptureError(f"input {path} is not a file (cameras are 0, 1, ... or /dev/videoN)")
        elif src.format == "v4l2" and not Path(src.url).exists():
            raise CaptureError(
                f"camera {src.url} does not exist; check the camera is plugged in and see `ls /dev/video*` "
                "(a v4l2loopback device is an output, not a camera)"
            )
        options: dict[str, str] = {}
        if not src.is_file:
            if self.size is not None:
                options["video_size"] = f"{self.size[0]}x{self.size[1]}"
            if self.fps is not None:
                options["framerate"] = f"{self.fps:g}"
        try:
            container = av.open(src.url, format=src.format, options=options)
        except (av.FFmpegError, OSError, ValueError) as e:
            what = "video file" if src.is_file else "camera"
            raise CaptureError(f"cannot open {what} {src.url}: {e}") from e
        if not container.streams.video:
            container.close()
            raise CaptureError(f"{src.url} has no video stream")
        return container

    def start(self) -> None:
        """Open the input (raises :class:`CaptureError`) and start reading."""
        if self._thread is not None:
            return
        self._container = self._open()
        stream = self._container.streams.video[0]
        log.info(
            "input %s: %dx%d, %s fps%s",
            self.source.url,
            stream.codec_context.width,
            stream.codec_context.height,
            stream.average_rate or "?",
            " (looped)" if self.source.is_file and self.loop else "",
        )
        self._thread = threading.Thread(target=self._run, name="tricam-capture", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop reading and release the device. Idempotent."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
        container, self._container = self._container, None
        if container is not None:
            try:
                container.close()
            except Exception:
                log.debug("closing the input failed", exc_info=True)

    def __enter__(self) -> FrameSource:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- consumer side -------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        with self._cond:
            return self._ended

    def get(self, timeout: float | None = None) -> tuple[RGBImage, float] | None:
        """The newest frame not yet taken and its time in seconds; None on timeout or end."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._seq == self._taken_seq and not self._ended and not self._stop.is_set():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cond.wait(left)
            if self._seq == self._taken_seq or self._frame is None:
                return None
            self._taken_seq = self._seq
            return self._frame, self._pts

    # -- reader thread -------------------------------------------------------------------

    def _publish(self, frame: RGBImage, pts: float) -> None:
        with self._cond:
            if self._seq != self._taken_seq:
                self.dropped += 1  # the consumer never saw the previous frame
            self._frame, self._pts = frame, pts
            self._seq += 1
            self.captured += 1
            self._cond.notify_all()

    def _run(self) -> None:
        try:
            self._read_all()
        except Exception as e:
            if not self._stop.is_set():
                self.error = f"reading {self.source.url} failed: {e}"
                log.error("%s", self.error)
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def _read_all(self) -> None:
        offset = 0.0  # media time added per loop so timestamps keep increasing
        start_wall: float | None = None
        while not self._stop.is_set():
            container = self._container
            if container is None:
                return
            stream = container.streams.video[0]
            last = 0.0
            period = 1.0 / float(stream.average_rate) if stream.average_rate else 1.0 / 30.0
            n = 0
            for frame in container.decode(stream):
                if self._stop.is_set():
                    return
                t = float(frame.time) if frame.time is not None else n * period
                n += 1
                last = t
                pts = offset + t
                if self.source.is_file and self.realtime:
                    if start_wall is None:
                        start_wall = time.monotonic() - pts
                    delay = start_wall + pts - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        return
                self._publish(frame.to_ndarray(format="rgb24"), pts)
            if not (self.source.is_file and self.loop) or n == 0:
                if n == 0:
                    self.error = f"{self.source.url} contains no decodable video frames"
                return
            offset += last + period
            container.seek(0)
