"""Virtual camera output: edited frames → a camera that Zoom, Meet or Teams can pick.

:class:`VirtualCameraSink` is a :class:`~streamer.contracts.FrameSink`. It follows one
session (a given id, or else the first that sends frames; when that one ends, the most
recently active other one), letterboxes its frames into a fixed output size and sends
them through pyvirtualcam (v4l2loopback on Linux, OBS Virtual Camera on Windows and
macOS) from a dedicated thread paced at a fixed frame rate.

A call app treats a camera that stops delivering frames as broken, so the sender never
waits for input: when input stalls it repeats the last frame, and before the first frame
it shows a "waiting" card. ``submit`` only swaps a one-slot mailbox (newest frame wins),
so it never blocks the engine's worker threads.
"""

from __future__ import annotations

import logging
import platform
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.api import RGBImage

log = logging.getLogger(__name__)

PIXEL_FORMATS = ("RGB", "BGR", "RGBA", "GRAY", "I420", "NV12", "YUYV", "UYVY")
"""Names of the pyvirtualcam ``PixelFormat`` members this module can convert RGB into."""

DEFAULT_FORMATS = ("RGB", "I420", "BGR")
"""Tried in order when no format is forced: every built-in backend takes RGB and converts
it in C (libyuv) with no extra copy here; the others cover backends that refuse RGB."""


class VcamError(RuntimeError):
    """The virtual camera cannot be used; the message says what is missing and how to fix it."""


# ---------------------------------------------------------------------------------------
# Pixel work: pure functions, so they are tested without any camera.


def letterbox(frame: RGBImage, width: int, height: int) -> RGBImage:
    """Fit ``frame`` into ``width``×``height`` keeping its aspect ratio, with black bars."""
    h, w = frame.shape[:2]
    out = np.zeros((height, width, 3), dtype=np.uint8)
    if h == 0 or w == 0:
        return out
    scale = min(width / w, height / h)
    nw = min(width, max(1, round(w * scale)))
    nh = min(height, max(1, round(h * scale)))
    x0, y0 = (width - nw) // 2, (height - nh) // 2
    out[y0 : y0 + nh, x0 : x0 + nw] = _resize(frame, nw, nh)
    return out


def _resize(frame: RGBImage, width: int, height: int) -> RGBImage:
    h, w = frame.shape[:2]
    if (w, h) == (width, height):
        return frame
    try:
        import cv2  # opencv comes with mediapipe; the fallback keeps this module usable without it
    except ImportError:  # pragma: no cover - depends on the environment
        ys = (np.arange(height) * h // height).clip(0, h - 1)
        xs = (np.arange(width) * w // width).clip(0, w - 1)
        return np.ascontiguousarray(frame[ys][:, xs])
    interp = cv2.INTER_AREA if width < w else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(np.ascontiguousarray(frame), (width, height), interpolation=interp), dtype=np.uint8)


_AV_FORMATS = {
    "BGR": "bgr24", "RGBA": "rgba", "GRAY": "gray",
    "I420": "yuv420p", "NV12": "nv12", "YUYV": "yuyv422", "UYVY": "uyvy422",
}


def convert_rgb(frame: RGBImage, fmt: str) -> npt.NDArray[np.uint8]:
    """Convert an RGB frame to the layout pyvirtualcam expects for ``fmt`` (a ``PixelFormat`` name).

    FFmpeg's swscale (inside PyAV) does the work: BT.601 limited range for the YUV formats,
    as cameras and call apps expect, and ~10x faster than numpy at 1280×720. The 4:2:0 and
    4:2:2 formats need an even width and height.
    """
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB frame, got {frame.shape} {frame.dtype}")
    if fmt == "RGB":
        return np.ascontiguousarray(frame)
    if fmt not in _AV_FORMATS:
        raise ValueError(f"unsupported pixel format {fmt!r}; supported: {', '.join(PIXEL_FORMATS)}")
    h, w = frame.shape[:2]
    if fmt in ("I420", "NV12", "YUYV", "UYVY") and (h % 2 or w % 2):
        raise ValueError(f"{fmt} needs an even width and height, got {w}x{h}")
    import av

    out = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24").reformat(format=_AV_FORMATS[fmt])
    if fmt == "UYVY":  # PyAV has no ndarray view of uyvy422: copy the packed rows without padding
        plane = out.planes[0]
        rows = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(h, plane.line_size)
        return np.ascontiguousarray(rows[:, : 2 * w]).ravel()
    array = np.ascontiguousarray(out.to_ndarray(), dtype=np.uint8)
    # pyvirtualcam takes the YUV layouts as one flat buffer; RGB-like ones keep their shape.
    return array.ravel() if fmt in ("I420", "NV12", "YUYV") else array


def waiting_card(width: int, height: int) -> RGBImage:
    """What the camera shows before the first frame: dark grey with a short notice."""
    card = np.full((height, width, 3), 24, dtype=np.uint8)
    try:
        import cv2
    except ImportError:  # pragma: no cover - plain dark frame without opencv
        return card
    text = "tricam: waiting for video"
    scale = max(0.4, width / 1280.0)
    thick = max(1, round(2 * scale))
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    org = ((width - tw) // 2, (height + th) // 2)
    cv2.putText(card, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (200, 200, 200), thick, cv2.LINE_AA)
    return card


# ---------------------------------------------------------------------------------------
# Errors that tell a person what to do.


def setup_hint() -> str:
    system = platform.system()
    if system == "Linux":
        return (
            "load the v4l2loopback kernel module (Debian/Ubuntu: apt install v4l2loopback-dkms), e.g. "
            "`sudo modprobe v4l2loopback devices=1 video_nr=10 card_label=\"tricam\" exclusive_caps=1`, "
            "then pass --vcam-device /dev/video10 (see docs/virtual-camera.md)"
        )
    if system in ("Windows", "Darwin"):
        return (
            "install OBS Studio 28 or newer and start its Virtual Camera once (Start Virtual Camera), "
            "then stop it so tricam can use it (see docs/virtual-camera.md)"
        )
    return f"pyvirtualcam has no virtual camera backend for {system or 'this platform'}"


def _import_pyvirtualcam() -> Any:
    try:
        import pyvirtualcam
    except ImportError as e:
        raise VcamError(
            f"the virtual camera needs the pyvirtualcam package ({e}); install it with "
            "`pip install pyvirtualcam` or `pip install -e '.[vcam]'`"
        ) from e
    return pyvirtualcam


# ---------------------------------------------------------------------------------------


class VirtualCameraSink:
    """Sends one session's edited frames to a virtual camera at a fixed size and rate.

    Args:
        width, height: output size; frames are letterboxed into it.
        fps: output rate the sender thread keeps, repeating the last frame when input stalls.
        backend: a pyvirtualcam backend name (``v4l2loopback``, ``obs``, ``unitycapture`` or
            one a program registered); None tries every backend of this platform.
        device: the device to open (``/dev/video10``, ``OBS Virtual Camera``); None: any free one.
        session: follow only this session id; None follows the first session that sends
            frames and, when it ends, the most recently active other one.
        pixel_format: force a pyvirtualcam ``PixelFormat`` name; None tries
            :data:`DEFAULT_FORMATS` in order.
    """

    def __init__(
        self,
        *,
        width: int = 1280,
        height: int = 720,
        fps: float = 30.0,
        backend: str | None = None,
        device: str | None = None,
        session: str | None = None,
        pixel_format: str | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise ValueError(f"virtual camera size must be positive and even, got {width}x{height}")
        if not fps > 0:
            raise ValueError(f"virtual camera fps must be positive, got {fps}")
        if pixel_format is not None and pixel_format not in PIXEL_FORMATS:
            raise ValueError(f"unknown pixel format {pixel_format!r}; known: {', '.join(PIXEL_FORMATS)}")
        self.width, self.height, self.fps = width, height, float(fps)
        self._backend_name = backend
        self._device_name = device
        self._pinned = session
        self._formats: Sequence[str] = (pixel_format,) if pixel_format else DEFAULT_FORMATS
        self._clock = clock

        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._camera: Any = None
        self._closed = False
        self.pixel_format: str | None = None

        # Guarded by _lock: the mailbox and who we follow.
        self._pending: RGBImage | None = None
        self._following: str | None = None
        self._active: dict[str, float] = {}  # session id -> time of its last frame
        self._submitted = 0
        self._dropped = 0
        # Written by the sender thread only.
        self._sent = 0
        self._repeats = 0
        self._send_errors = 0
        self._have_frame = False
        self._error: str | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Open the device and start the sender thread. Raises :class:`VcamError`."""
        if self._closed:
            raise VcamError("this virtual camera sink was closed; make a new one")
        if self._thread is not None:
            return
        pyvirtualcam = _import_pyvirtualcam()
        backends: dict[str, Any] = dict(pyvirtualcam.camera.BACKENDS)
        if self._backend_name is not None and self._backend_name not in backends:
            known = ", ".join(sorted(backends)) or "none"
            raise VcamError(
                f"virtual camera backend {self._backend_name!r} is not available on this machine "
                f"(available: {known}); {setup_hint()}"
            )
        if not backends:
            raise VcamError(f"no virtual camera backend exists on this machine; {setup_hint()}")
        errors: list[str] = []
        for fmt in self._formats:
            try:
                self._camera = pyvirtualcam.Camera(
                    self.width,
                    self.height,
                    self.fps,
                    fmt=pyvirtualcam.PixelFormat[fmt],
                    device=self._device_name,
                    backend=self._backend_name,
                )
            except Exception as e:  # backends raise RuntimeError, ValueError or their own types
                msg = " ".join(str(e).split()).rstrip(".") or type(e).__name__
                if msg not in errors:
                    errors.append(msg)
                continue
            self.pixel_format = fmt
            break
        if self._camera is None:
            where = f" {self._device_name}" if self._device_name else ""
            raise VcamError(f"cannot open the virtual camera{where}: {'; '.join(errors)}. To fix: {setup_hint()}")
        log.info(
            "virtual camera %s (%s backend) open: %dx%d at %g fps, %s",
            self.device,
            self._camera.backend,
            self.width,
            self.height,
            self.fps,
            self.pixel_format,
        )
        self._thread = threading.Thread(target=self._run, name="vcam-sender", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the sender and release the device. Idempotent; safe from any thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
            if thread.is_alive():
                log.warning("virtual camera sender did not stop within 5 s")
        camera, self._camera = self._camera, None
        if camera is not None:
            try:
                camera.close()
            except Exception:
                log.exception("closing the virtual camera failed")
            log.info("virtual camera released after %d frames (%d repeats)", self._sent, self._repeats)

    def __enter__(self) -> VirtualCameraSink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def device(self) -> str | None:
        camera = self._camera
        return None if camera is None else str(camera.device)

    @property
    def error(self) -> str | None:
        """Set once the device has failed for good (the sender stopped); None while it works."""
        return self._error

    @property
    def following(self) -> str | None:
        with self._lock:
            return self._following

    # -- FrameSink -------------------------------------------------------------------

    def submit(self, session_id: str, frame: RGBImage, pts_s: float) -> None:
        """Offer an edited frame; never blocks beyond a copy and a lock held for a few lines."""
        with self._lock:
            if self._closed:
                return
            if self._pinned is not None and session_id != self._pinned:
                return
            self._active[session_id] = self._clock()
            if self._following is None:
                self._following = session_id
                log.info("virtual camera follows session %s", session_id)
            if session_id != self._following:
                return
        # Copy outside the lock: the caller may reuse its buffer once we return.
        copy = np.array(frame, dtype=np.uint8, copy=True)
        with self._lock:
            if self._closed or self._following != session_id:
                return
            if self._pending is not None:
                self._dropped += 1  # newest frame wins; the sender never saw this one
            self._pending = copy
            self._submitted += 1

    def session_closed(self, session_id: str) -> None:
        with self._lock:
            self._active.pop(session_id, None)
            if session_id != self._following:
                return
            nxt = max(self._active, key=self._active.__getitem__) if self._active else None
            if self._pinned is not None:
                nxt = None  # a pinned sink waits for that same id to come back
            self._following = nxt
        if nxt is None:
            log.info("virtual camera: session %s ended; holding its last frame", session_id)
        else:
            log.info("virtual camera: session %s ended; now follows %s", session_id, nxt)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "device": self.device,
                "pixel_format": self.pixel_format,
                "following": self._following,
                "submitted": self._submitted,
                "dropped": self._dropped,
                "sent": self._sent,
                "repeats": self._repeats,
                "send_errors": self._send_errors,
            }

    # -- sender thread ---------------------------------------------------------------

    def _prepare(self, frame: RGBImage) -> npt.NDArray[np.uint8]:
        assert self.pixel_format is not None
        return convert_rgb(letterbox(frame, self.width, self.height), self.pixel_format)

    def _run(self) -> None:
        try:
            self._send_loop()
        except Exception as e:  # the sender must not vanish without a word
            log.exception("virtual camera sender stopped")
            self._error = f"virtual camera {self.device}: the sender stopped: {e}"

    def _send_loop(self) -> None:
        assert self.pixel_format is not None
        period = 1.0 / self.fps
        # A device that fails for a second on end is gone (unloaded module, OBS closed): stop
        # and say so, rather than pretend the call app still gets video.
        give_up_after = max(5, round(self.fps))
        consecutive = 0
        current = convert_rgb(waiting_card(self.width, self.height), self.pixel_format)
        next_t = self._clock()
        while not self._stop.is_set():
            delay = next_t - self._clock()
            if delay > 0:
                self._stop.wait(delay)
                continue
            with self._lock:
                frame, self._pending = self._pending, None
            if frame is not None:
                try:
                    current = self._prepare(frame)
                    self._have_frame = True
                except Exception:
                    log.exception("virtual camera: could not convert a frame; repeating the last one")
            elif self._have_frame:
                self._repeats += 1
            camera = self._camera
            if camera is None:
                break
            try:
                camera.send(current)
            except Exception as e:
                # Keep pacing: a device that hiccups once should not end the output.
                self._send_errors += 1
                consecutive += 1
                if self._send_errors in (1, 10, 100) or self._send_errors % 1000 == 0:
                    log.exception("virtual camera send failed (%d so far)", self._send_errors)
                if consecutive >= give_up_after:
                    self._error = (f"virtual camera {self.device}: {consecutive} sends failed in a row "
                                   f"(last: {' '.join(str(e).split()) or type(e).__name__})")
                    log.error("%s; the virtual camera stops", self._error)
                    break
            else:
                self._sent += 1
                consecutive = 0
            next_t += period
            lag = self._clock() - next_t
            if lag > period:
                # Fell behind (slow conversion, a busy machine): skip the missed slots rather
                # than sending a burst that a call app would show as a jump.
                next_t += period * int(lag / period)


# ---------------------------------------------------------------------------------------
# Command-line options shared by `tricam serve` and `tricam cam`.


def parse_size(text: str) -> tuple[int, int]:
    """argparse type for ``WIDTHxHEIGHT``."""
    import argparse

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 1280x720, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return w, h


def add_vcam_arguments(parser: Any, *, flag_help: str, with_session: bool) -> None:
    """The ``--vcam*`` option group; ``with_session`` adds ``--vcam-session`` (server only)."""
    group = parser.add_argument_group("virtual camera")
    group.add_argument("--vcam", action="store_true", help=flag_help)
    group.add_argument("--vcam-size", type=parse_size, default=(1280, 720), metavar="WxH", help="default 1280x720")
    group.add_argument("--vcam-fps", type=int, default=30, help="default 30")
    group.add_argument("--vcam-backend", default="auto", metavar="NAME", help="pyvirtualcam backend (default auto)")
    group.add_argument("--vcam-device", default=None, metavar="PATH", help="device, e.g. /dev/video10")
    if with_session:
        group.add_argument("--vcam-session", default=None, metavar="ID",
                           help="session whose frames the camera shows (default: the first session)")


def sink_from_args(args: Any) -> VirtualCameraSink:
    """A (not yet started) sink for the parsed ``--vcam*`` options."""
    width, height = args.vcam_size
    return VirtualCameraSink(
        width=width, height=height, fps=args.vcam_fps,
        backend=None if args.vcam_backend == "auto" else args.vcam_backend,
        device=args.vcam_device, session=getattr(args, "vcam_session", None),
    )
