"""Per-session figures for the ``stats`` message, safe to update from worker threads.

Rates and medians cover the last second; every window is a bounded deque, so a session
that runs for hours keeps a constant footprint.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

WINDOW_S = 1.0
_MAXLEN = 512  # > 1 s of events at any camera rate we expect (≤ 240 fps)


def _rate(times: deque[float], now: float) -> float:
    n = sum(1 for t in times if now - t <= WINDOW_S)
    return float(n) / WINDOW_S


def _recent_median(samples: deque[tuple[float, float]], now: float) -> float | None:
    recent = [v for t, v in samples if now - t <= WINDOW_S]
    return round(statistics.median(recent), 2) if recent else None


class SessionStats:
    """Counters and one-second windows for one session's media path."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._start = clock()
        self.frames_in = 0
        self.frames_out = 0
        self.dropped = 0
        self.faces: int | None = None
        self.too_small = 0
        self._in_times: deque[float] = deque(maxlen=_MAXLEN)
        self._out_times: deque[float] = deque(maxlen=_MAXLEN)
        self._latency: deque[tuple[float, float]] = deque(maxlen=_MAXLEN)
        self._engine: deque[tuple[float, float]] = deque(maxlen=_MAXLEN)

    def frame_in(self) -> None:
        with self._lock:
            self.frames_in += 1
            self._in_times.append(self._clock())

    def frame_dropped(self) -> None:
        with self._lock:
            self.dropped += 1

    def frame_out(
        self, *, received_at: float, engine_ms: float | None, faces: int | None, too_small: int
    ) -> None:
        """One edited frame handed to the encoder; ``received_at`` is on this object's clock."""
        with self._lock:
            now = self._clock()
            self.frames_out += 1
            self._out_times.append(now)
            self._latency.append((now, (now - received_at) * 1000.0))
            if engine_ms is not None:
                self._engine.append((now, engine_ms))
            self.faces = faces
            self.too_small = too_small

    def now(self) -> float:
        return self._clock()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            now = self._clock()
            return {
                "fps_in": _rate(self._in_times, now),
                "fps_out": _rate(self._out_times, now),
                "latency_ms": _recent_median(self._latency, now),
                "engine_ms": _recent_median(self._engine, now),
                "dropped": self.dropped,
                "faces": self.faces,
                "too_small": self.too_small,
                "frames_in": self.frames_in,
                "frames_out": self.frames_out,
                "uptime_s": round(now - self._start, 1),
            }
