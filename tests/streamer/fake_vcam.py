"""An in-memory pyvirtualcam backend, registered by the tests as ``fake``.

It records what a real device would receive (the raw 1-D buffers and when they came),
so tests can check size, pixel format, pacing and the device lifecycle without
v4l2loopback or OBS.
"""

from __future__ import annotations

import threading
import time
from typing import Any, ClassVar

import numpy as np
import pyvirtualcam
from pyvirtualcam.util import decode_fourcc


class FakeCamera:
    instances: ClassVar[list[FakeCamera]] = []
    accepted: ClassVar[set[str] | None] = None
    """PixelFormat names this fake accepts (None: all); others raise like a picky device."""
    fail_with: ClassVar[str | None] = None
    """When set, opening raises RuntimeError with this message (a missing device)."""
    send_fails_after: ClassVar[int | None] = None
    """When set, every send after this many raises OSError (a device that went away)."""

    def __init__(self, *, width: int, height: int, fps: float, fourcc: int, device: str | None, **kw: Any) -> None:
        if self.fail_with is not None:
            raise RuntimeError(self.fail_with)
        self.fmt = pyvirtualcam.PixelFormat(decode_fourcc(fourcc)).name
        if self.accepted is not None and self.fmt not in self.accepted:
            raise RuntimeError(f"pixel format {self.fmt} not supported by the fake device")
        self.width, self.height, self.fps = width, height, fps
        self._device = device or "/dev/fake0"
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []
        self.closed = 0
        self._lock = threading.Lock()
        FakeCamera.instances.append(self)

    def send(self, frame: np.ndarray) -> None:
        if self.send_fails_after is not None and len(self.frames) >= self.send_fails_after:
            raise OSError(19, "No such device")
        with self._lock:
            self.frames.append(frame.copy())
            self.times.append(time.perf_counter())

    def close(self) -> None:
        self.closed += 1

    def device(self) -> str:
        return self._device

    def native_fourcc(self) -> int | None:
        return None

    def snapshot(self) -> tuple[list[np.ndarray], list[float]]:
        with self._lock:
            return list(self.frames), list(self.times)

    def rgb_frames(self) -> list[np.ndarray]:
        """Frames as (H, W, 3); only for an RGB device."""
        assert self.fmt == "RGB", self.fmt
        frames, _ = self.snapshot()
        return [f.reshape(self.height, self.width, 3) for f in frames]

    @classmethod
    def reset(cls) -> None:
        cls.instances = []
        cls.accepted = None
        cls.fail_with = None
        cls.send_fails_after = None


def register() -> None:
    FakeCamera.reset()
    pyvirtualcam.register_backend("fake", FakeCamera)
