"""Seams inside the streamer that more than one module implements.

``FrameSink``: where edited frames go besides the session's own WebRTC track (the
virtual camera). ``StyleTarget``: what a websocket session's commands act on — its own
pipeline in ``tricam serve``, or the one shared local-camera pipeline in ``tricam cam``,
where the browser page is only a remote control.
"""

from __future__ import annotations

from typing import Any, Protocol

from engine.api import RGBImage


class FrameSink(Protocol):
    def submit(self, session_id: str, frame: RGBImage, pts_s: float) -> None:
        """Offer an edited frame. Must not block: called from worker threads per frame."""

    def session_closed(self, session_id: str) -> None:
        """The session ended; a sink following it picks another or holds its last frame."""

    def close(self) -> None:
        """Release devices. Idempotent.

        A sink may also have an ``error`` attribute (``str | None``): once set, the pipeline
        drops the sink and reports why (``tricam cam`` then exits non-zero).
        """


class StyleTarget(Protocol):
    def set_style(self, style: str, intensity: float) -> None:
        """Apply a validated (style, intensity); takes effect on the next processed frame."""

    def current(self) -> tuple[str, float]:
        """The (style, intensity) in force."""

    def stats(self) -> dict[str, Any]:
        """Figures for the ``stats`` message (see docs/protocol.md)."""
