"""The media path of one session: newest-frame mailbox → engine on a worker thread → encoder.

aiortc's incoming track buffers decoded frames in an unbounded ``asyncio.Queue``; if the
consumer is slower than the camera, latency grows for ever. So a reader task drains that
queue as fast as frames arrive into a one-slot :class:`LatestSlot`, overwriting (and
counting) any frame the filter has not started on yet. A processor task runs the engine on
the newest frame in an executor thread and leaves the result in a second one-slot mailbox,
from which the outgoing track's ``recv()`` (aiortc's encoder loop) takes it, with the
input's pts, time base and size. Nothing on this path holds more than one frame per slot.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from fractions import Fraction
from typing import Any, Generic, TypeVar

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from engine.api import EngineSession, ProcessedFrame, StyleRegistry
from engine.styles.basic import PassThrough
from streamer.contracts import FrameSink
from streamer.stats import SessionStats

log = logging.getLogger(__name__)

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """A one-item mailbox for the event loop: ``put`` overwrites, ``take`` waits for an item.

    Not thread-safe: producer and consumer both run on the loop.
    """

    def __init__(self) -> None:
        self._item: T | None = None
        self._event = asyncio.Event()
        self._closed = False

    def put(self, item: T) -> bool:
        """Store ``item``; return True when it replaced one nobody took (a dropped frame)."""
        replaced = self._item is not None
        self._item = item
        self._event.set()
        return replaced

    async def take(self) -> T:
        """The newest item; raises :class:`MediaStreamError` once closed and empty."""
        while self._item is None:
            if self._closed:
                raise MediaStreamError
            self._event.clear()
            await self._event.wait()
        item, self._item = self._item, None
        return item

    def close(self) -> None:
        self._closed = True
        self._event.set()

    @property
    def closed(self) -> bool:
        return self._closed


def frame_seconds(frame: av.VideoFrame) -> float | None:
    if frame.pts is None or frame.time_base is None:
        return None
    return float(frame.pts * frame.time_base)


def to_rgb(frame: av.VideoFrame) -> Any:
    """An ``(H, W, 3)`` uint8 RGB array of ``frame`` at its own size (any pixel format, odd sizes too)."""
    return frame.to_ndarray(format="rgb24")


def from_rgb(image: Any, like: av.VideoFrame) -> av.VideoFrame:
    """A new frame holding ``image`` with ``like``'s pts and time base."""
    out = av.VideoFrame.from_ndarray(image, format="rgb24")
    out.pts = like.pts
    out.time_base = like.time_base if like.time_base is not None else Fraction(1, 90000)
    return out


class Pipeline:
    """One session's style choice, engine session and figures; implements ``StyleTarget``.

    :meth:`process` runs on worker threads (one call at a time per pipeline, as aiortc's
    sender awaits each ``recv``); everything else is cheap and safe from any thread.
    """

    def __init__(
        self,
        session_id: str,
        registry: StyleRegistry,
        engine_session: EngineSession,
        *,
        sinks: Sequence[FrameSink] = (),
        style: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session_id = session_id
        self.registry = registry
        self.engine_session = engine_session
        self.sinks = tuple(sinks)
        self.media_stats = SessionStats(clock)
        names = registry.names()
        if not names:
            raise ValueError("the engine has no styles")
        first = style if style is not None else names[0]
        self._choice: tuple[str, float] = (first, registry.validate(first, None))
        self._lock = threading.Lock()
        self._errors = 0

    # --- StyleTarget ---------------------------------------------------------------
    def set_style(self, style: str, intensity: float) -> None:
        with self._lock:
            self._choice = (style, intensity)

    def current(self) -> tuple[str, float]:
        with self._lock:
            return self._choice

    def stats(self) -> dict[str, Any]:
        style, intensity = self.current()
        return {**self.media_stats.snapshot(), "style": style, "intensity": intensity}

    # --- per frame (worker thread) ---------------------------------------------------
    def _passthrough(self, style: str) -> bool:
        return isinstance(self.registry.get(style), PassThrough)

    def process(self, frame: av.VideoFrame) -> tuple[av.VideoFrame, ProcessedFrame | None]:
        """Edit one frame; returns the frame for the encoder and the engine's figures.

        The pass-through style skips the RGB round trip (two colour conversions, ~2-4 ms at
        640×480 here) unless a sink needs the pixels. An engine failure is logged and the
        camera frame passes through, so one bad frame does not end the call.
        """
        style, intensity = self.current()
        if self._passthrough(style) and not self.sinks:
            return frame, None
        ts = frame_seconds(frame)
        try:
            rgb = to_rgb(frame)
            result = self.engine_session.process(
                rgb, style=style, intensity=intensity, timestamp=ts if ts is not None else time.monotonic()
            )
        except Exception:
            self._errors += 1
            if self._errors <= 3 or self._errors % 100 == 0:
                log.exception("session %s: processing failed (%d so far); passing the frame through",
                              self.session_id, self._errors)
            return frame, None
        for sink in self.sinks:
            try:
                sink.submit(self.session_id, result.image, ts if ts is not None else 0.0)
            except Exception:
                log.exception("session %s: frame sink %r failed", self.session_id, sink)
        if result.image is rgb:  # the style returned its input: keep the decoded frame as is
            return frame, result
        return from_rgb(result.image, frame), result


class FilteredTrack(MediaStreamTrack):
    """The outgoing video track: the newest incoming frame, processed by a :class:`Pipeline`.

    Two tasks and two one-slot mailboxes: a reader drains aiortc's queue into ``_in``; a
    processor takes the newest frame from ``_in``, runs the engine on a worker thread and
    puts the result in ``_out``; ``recv`` (aiortc's encoder loop) takes from ``_out``. So
    the engine works on frame N+1 while the encoder compresses frame N, and a slow
    filter sets the output rate by itself (100 ms per frame → ~10 fps), never a backlog.
    """

    kind = "video"

    def __init__(self, source: MediaStreamTrack, pipeline: Pipeline, executor: Executor | None) -> None:
        super().__init__()
        self._source = source
        self._pipeline = pipeline
        self._executor = executor
        self._in: LatestSlot[tuple[av.VideoFrame, float]] = LatestSlot()
        self._out: LatestSlot[tuple[av.VideoFrame, float, ProcessedFrame | None]] = LatestSlot()
        self._tasks = [asyncio.ensure_future(self._read()), asyncio.ensure_future(self._process())]

    async def _read(self) -> None:
        stats = self._pipeline.media_stats
        try:
            while True:
                frame = await self._source.recv()
                if not isinstance(frame, av.VideoFrame):  # a video track yields frames, not packets
                    continue
                stats.frame_in()
                if self._in.put((frame, stats.now())):
                    stats.frame_dropped()
        except MediaStreamError:
            pass
        finally:
            self._in.close()

    async def _process(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                frame, received_at = await self._in.take()
                out, result = await loop.run_in_executor(self._executor, self._pipeline.process, frame)
                if self._out.put((out, received_at, result)):  # the encoder fell behind the engine
                    self._pipeline.media_stats.frame_dropped()
        except MediaStreamError:
            pass
        finally:
            self._out.close()

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        out, received_at, result = await self._out.take()
        self._pipeline.media_stats.frame_out(
            received_at=received_at,
            engine_ms=None if result is None else result.engine_ms,
            faces=None if result is None else result.faces,
            too_small=0 if result is None else result.too_small,
        )
        return out

    def stop(self) -> None:
        super().stop()
        self._in.close()
        self._out.close()
        for t in self._tasks:
            t.cancel()

    async def wait_stopped(self) -> None:
        """Wait for the reader and processor tasks to finish after :meth:`stop`."""
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def drain(track: MediaStreamTrack) -> None:
    """Consume a track we do not use (e.g. audio) so aiortc's queue for it stays empty."""
    try:
        while True:
            await track.recv()
    except MediaStreamError:
        pass
