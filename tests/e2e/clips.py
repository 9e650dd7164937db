"""Short test clips: the shared talking-head video cut down, or a synthetic stand-in.

Chromium's fake camera reads y4m (raw 4:2:0 frames); PyAV writes it with the
``yuv4mpegpipe`` muxer and ``rawvideo`` codec, so no system ffmpeg is needed.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

MEDIA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "media"
TALKING_HEAD = MEDIA_DIR / "v01_talking_male.mp4"


def synthetic_frame(width: int, height: int, i: int) -> np.ndarray:
    """A cool blue-green backdrop with a pale moving disc: blue clearly above red, unlike bronze."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.empty((height, width, 3), np.float32)
    img[..., 0] = 30 + 30 * x / width
    img[..., 1] = 90 + 60 * y / height
    img[..., 2] = 170 + 60 * (1 - y / height)
    cx = width * (0.5 + 0.2 * np.sin(i / 10.0))
    cy = height * 0.5
    disc = (x - cx) ** 2 + (y - cy) ** 2 < (min(width, height) * 0.25) ** 2
    img[disc] = (200, 190, 220)
    return img.clip(0, 255).astype(np.uint8)


def _fit(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Centre-crop to the target aspect, then resize (so a face stays undistorted)."""
    h, w = rgb.shape[:2]
    if w * height > h * width:
        cw = h * width // height
        rgb = rgb[:, (w - cw) // 2 : (w - cw) // 2 + cw]
    else:
        ch = w * height // width
        rgb = rgb[(h - ch) // 2 : (h - ch) // 2 + ch]
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return frame.reformat(width=width, height=height).to_ndarray(format="rgb24")


def source_frames(width: int, height: int, seconds: float, fps: int, *, real: bool = True) -> tuple[list[np.ndarray], str]:
    """Frames for a clip and where they came from (``v01_talking_male.mp4`` or ``synthetic``)."""
    n = max(1, round(seconds * fps))
    if real and TALKING_HEAD.is_file():
        frames: list[np.ndarray] = []
        with av.open(str(TALKING_HEAD)) as container:
            stream = container.streams.video[0]
            src_fps = float(stream.average_rate or fps)
            for k, frame in enumerate(container.decode(stream)):
                # Resample to `fps` by picking the source frame nearest each output instant.
                while len(frames) < n and round(len(frames) * src_fps / fps) <= k:
                    frames.append(_fit(frame.to_ndarray(format="rgb24"), width, height))
                if len(frames) >= n:
                    break
        if frames:
            return frames, TALKING_HEAD.name
    return [synthetic_frame(width, height, i) for i in range(n)], "synthetic"


def write_clip(path: Path, frames: list[np.ndarray], fps: int) -> Path:
    """Write ``frames`` as y4m (by suffix ``.y4m``) or, otherwise, MPEG-4 Part 2 (fast to encode)."""
    y4m = path.suffix == ".y4m"
    with av.open(str(path), "w", format="yuv4mpegpipe" if y4m else None) as out:
        stream = out.add_stream("rawvideo" if y4m else "mpeg4", rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def make_clip(path: Path, *, width: int = 320, height: int = 240, seconds: float = 3.0, fps: int = 25,
              real: bool = True) -> str:
    """Write a clip to ``path``; returns its origin (see :func:`source_frames`)."""
    frames, origin = source_frames(width, height, seconds, fps, real=real)
    write_clip(path, frames, fps)
    return origin
