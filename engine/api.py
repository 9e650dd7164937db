"""The seam between the streamer and everything that runs per frame.

The streamer owns transport and threads; the engine owns pixels. Per call, the streamer
gives an :class:`EngineSession` one RGB frame plus the session's chosen style and
intensity, and gets back a frame of the same size with a few figures for the stats.

Frames are ``numpy`` arrays, ``uint8``, shape ``(H, W, 3)``, RGB. A style never changes
the frame's size. Per-session state (face tracking filters, temporal smoothing, a style's
own memory) lives in the session, so two calls never share it and a reconnect starts
clean. ``EngineSession.process`` is called from a worker thread, one call at a time per
session; different sessions may run concurrently, so styles keep no mutable state on
themselves.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

RGBImage = npt.NDArray[np.uint8]
"""An ``(H, W, 3)`` uint8 RGB image."""


class EngineError(Exception):
    """Base class of errors the engine reports to its callers."""


class UnknownStyleError(EngineError, KeyError):
    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        super().__init__(f"unknown style {name!r}; known styles: {', '.join(self.known)}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class IntensityError(EngineError, ValueError):
    pass


@dataclass(frozen=True)
class StyleInfo:
    """What a client may know about a style (sent in the ``styles`` message)."""

    name: str
    description: str
    kind: str = "basic"
    """``basic`` (whole-frame), ``face`` (face-aware, no model) or ``neural``."""
    needs_faces: bool = False
    """The engine tracks faces for this style and passes them in the context."""
    intensity_range: tuple[float, float] = (0.0, 1.0)
    default_intensity: float = 1.0
    passthrough: bool = False
    """The style returns every frame unchanged, so callers may skip the pixel round trip."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "kind": self.kind,
            "needs_faces": self.needs_faces,
            "intensity_min": self.intensity_range[0],
            "intensity_max": self.intensity_range[1],
            "default_intensity": self.default_intensity,
        }


@dataclass
class StyleContext:
    """Everything a style may read for one frame besides the pixels."""

    intensity: float
    timestamp: float
    """Media time of the frame in seconds (monotonic within a session)."""
    state: Any
    """The object this style's ``new_state`` made for this session (or None)."""
    faces: Sequence[Any] | None = None
    """Tracked faces, largest first, when the style ``needs_faces``; else None."""


class Style(ABC):
    """A per-frame effect. Implementations hold only immutable configuration and models."""

    info: StyleInfo

    def new_state(self) -> Any:
        """Per-session state; made on first use in a session and dropped with it."""
        return None

    @abstractmethod
    def apply(self, frame: RGBImage, ctx: StyleContext) -> RGBImage:
        """Return the processed frame, same shape and dtype as ``frame``."""


class FaceTracker(Protocol):
    """Per-session face tracking, provided by ``engine.faces``."""

    def track(self, frame: RGBImage, timestamp: float) -> TrackResult: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...


@dataclass
class TrackResult:
    faces: Sequence[Any]
    """Faces to edit, largest first."""
    too_small: int = 0
    """Faces found but too small to edit well (passed through)."""


class StyleRegistry:
    """Name → style, in registration order (the order clients show)."""

    def __init__(self, styles: Iterable[Style] = ()) -> None:
        self._styles: dict[str, Style] = {}
        for s in styles:
            self.register(s)

    def register(self, style: Style) -> None:
        name = style.info.name
        if not name or name in self._styles:
            raise ValueError(f"style name {name!r} is empty or already registered")
        self._styles[name] = style

    def get(self, name: str) -> Style:
        try:
            return self._styles[name]
        except KeyError:
            raise UnknownStyleError(name, self._styles) from None

    def __contains__(self, name: object) -> bool:
        return name in self._styles

    def names(self) -> list[str]:
        return list(self._styles)

    def infos(self) -> list[StyleInfo]:
        return [s.info for s in self._styles.values()]

    def validate(self, name: str, intensity: float | None) -> float:
        """Check a (style, intensity) request; return the intensity to use."""
        info = self.get(name).info
        if intensity is None:
            return info.default_intensity
        lo, hi = info.intensity_range
        if not (lo <= intensity <= hi):  # also rejects NaN
            raise IntensityError(f"intensity {intensity} out of range [{lo}, {hi}] for style {name!r}")
        return float(intensity)


@dataclass
class ProcessedFrame:
    image: RGBImage
    engine_ms: float
    faces: int | None = None
    """Faces edited in this frame; None when the style does not look for faces."""
    too_small: int = 0


@dataclass
class EngineSession:
    """One caller's per-frame state. Not thread-safe: one ``process`` call at a time."""

    registry: StyleRegistry
    tracker_factory: Callable[[], FaceTracker] | None = None
    _states: dict[str, Any] = field(default_factory=dict)
    _tracker: FaceTracker | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def process(self, frame: RGBImage, *, style: str, intensity: float, timestamp: float) -> ProcessedFrame:
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise EngineError(f"frame must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
        with self._lock:
            t0 = time.perf_counter()
            s = self.registry.get(style)
            if s.info.name not in self._states:
                self._states[s.info.name] = s.new_state()
            ctx = StyleContext(intensity=intensity, timestamp=timestamp, state=self._states[s.info.name])
            n_faces: int | None = None
            too_small = 0
            if s.info.needs_faces:
                tracked = self._track(frame, timestamp)
                ctx.faces = tracked.faces
                n_faces, too_small = len(tracked.faces), tracked.too_small
            out = s.apply(frame, ctx) if frame.size else frame
            if out.shape != frame.shape or out.dtype != np.uint8:
                raise EngineError(f"style {style!r} returned {out.shape} {out.dtype} for {frame.shape}")
            return ProcessedFrame(out, (time.perf_counter() - t0) * 1000.0, n_faces, too_small)

    def _track(self, frame: RGBImage, timestamp: float) -> TrackResult:
        if self.tracker_factory is None:
            return TrackResult(faces=[])
        if self._tracker is None:
            self._tracker = self.tracker_factory()
        return self._tracker.track(frame, timestamp)

    def reset(self) -> None:
        """Forget temporal state (e.g. after a style switch that should start clean)."""
        with self._lock:
            self._states.clear()
            if self._tracker is not None:
                self._tracker.reset()

    def close(self) -> None:
        with self._lock:
            self._states.clear()
            if self._tracker is not None:
                self._tracker.close()
                self._tracker = None


@dataclass
class Engine:
    """Shared, read-only after start-up: the styles and what every session needs to build its state."""

    registry: StyleRegistry
    tracker_factory: Callable[[], FaceTracker] | None = None
    core: Any = None
    """The trained 3D core (:class:`engine.triplane.core.CoreModel`) when a bundle provides one."""

    def open_session(self) -> EngineSession:
        return EngineSession(self.registry, self.tracker_factory)
