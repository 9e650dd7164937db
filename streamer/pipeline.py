"""One frame pipeline for every way tricam runs: ``tricam serve`` sessions and ``tricam cam``.

A :class:`Pipeline` is one stream's style choice, engine session, sinks, figures and error
policy; :func:`run_frames` is the loop both commands drive it with (newest frame in, engine
on a worker thread under a deadline, result out). There is one error policy:

- an exception while editing a frame (style, engine, conversion, a sink) is logged once per
  cause with its traceback, counted (``errors`` in the stats), reported through
  ``on_error`` (a ``tricam serve`` session sends it to its page as an ``error`` event), and
  that frame passes through unchanged; the style is marked ``failing`` until a frame of it
  succeeds again;
- a frame that runs past the deadline is reported as ``style_timeout`` and frames pass
  through untouched until the stuck call returns (a thread cannot be killed; the call can
  be kept alive);
- a sink that raises or reports ``error`` is reported (``sink_failed``) and dropped;
  :attr:`Pipeline.sink_error` lets ``tricam cam`` exit non-zero with the sink's message;
- the loop itself never dies quietly: anything it raises is reported the same way and the
  loop goes on with the next frame.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal, TypeVar, cast

import av
from aiortc.mediastreams import MediaStreamError

from engine.api import EngineSession, ProcessedFrame, RGBImage, StyleRegistry
from streamer.contracts import FrameSink
from streamer.stats import SessionStats

log = logging.getLogger(__name__)

F = TypeVar("F")

FrameErrorCode = Literal["style_failed", "style_timeout", "sink_failed", "bad_frame", "internal"]
DEFAULT_DEADLINE_S = 3.0
"""A frame still in the engine after this long is reported and frames pass through meanwhile."""
_MAX_CAUSES = 256  # distinct causes remembered for log-once; beyond it every error logs at DEBUG


@dataclass(frozen=True)
class FrameError:
    """What a session tells its client when frames stop being edited."""

    code: FrameErrorCode
    message: str
    style: str | None = None


def frame_seconds(frame: av.VideoFrame) -> float | None:
    if frame.pts is None or frame.time_base is None:
        return None
    return float(frame.pts * frame.time_base)


def to_rgb(frame: av.VideoFrame) -> RGBImage:
    """An ``(H, W, 3)`` uint8 RGB array of ``frame`` at its own size (any pixel format, odd sizes too)."""
    return cast(RGBImage, frame.to_ndarray(format="rgb24"))


def from_rgb(image: RGBImage, like: av.VideoFrame) -> av.VideoFrame:
    """A new frame holding ``image`` with ``like``'s pts and time base."""
    out = av.VideoFrame.from_ndarray(image, format="rgb24")
    out.pts = like.pts
    out.time_base = like.time_base if like.time_base is not None else Fraction(1, 90000)
    return out


def _describe(exc: BaseException | str) -> str:
    if isinstance(exc, str):
        return exc
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Pipeline:
    """One stream's style choice, engine session, sinks and figures; a ``StyleTarget``.

    The ``process_*`` methods run on worker threads, one at a time per pipeline; everything
    else is cheap and safe from any thread.

    Args:
        session_id: names this stream to the sinks and in logs.
        registry: the engine's styles.
        engine_session: per-stream engine state (closed by the owner).
        sinks: receive every output frame (virtual camera, preview).
        style, intensity: the starting choice (validated here).
        on_error: called (from any thread) when a new cause of failure appears or a style
            starts failing; must not block.
    """

    def __init__(
        self,
        session_id: str,
        registry: StyleRegistry,
        engine_session: EngineSession,
        *,
        sinks: Sequence[FrameSink] = (),
        style: str | None = None,
        intensity: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_error: Callable[[FrameError], None] | None = None,
    ) -> None:
        self.session_id = session_id
        self.registry = registry
        self.engine_session = engine_session
        self.media_stats = SessionStats(clock)
        self.on_error = on_error
        names = registry.names()
        if not names:
            raise ValueError("the engine has no styles")
        first = style if style is not None else names[0]
        self._choice: tuple[str, float] = (first, registry.validate(first, intensity))
        self._lock = threading.Lock()
        self._sinks: list[FrameSink] = list(sinks)
        self._sink_error: str | None = None
        self._errors = 0
        self._failing: str | None = None
        self._causes: set[tuple[str, str | None, str]] = set()

    # --- StyleTarget ---------------------------------------------------------------
    def set_style(self, style: str, intensity: float) -> None:
        with self._lock:
            if style != self._choice[0]:
                self._failing = None  # a newly chosen style gets a fresh chance
            self._choice = (style, intensity)

    def current(self) -> tuple[str, float]:
        with self._lock:
            return self._choice

    def stats(self) -> dict[str, Any]:
        style, intensity = self.current()
        with self._lock:
            errors, failing = self._errors, self._failing
        return {**self.media_stats.snapshot(), "style": style, "intensity": intensity,
                "errors": errors, "failing": failing}

    # --- health ----------------------------------------------------------------------
    @property
    def errors(self) -> int:
        with self._lock:
            return self._errors

    @property
    def failing(self) -> str | None:
        """The chosen style while its frames fail (they pass through), else None."""
        with self._lock:
            return self._failing

    @property
    def sink_error(self) -> str | None:
        """Why the first sink that failed was dropped (None while every sink works)."""
        with self._lock:
            return self._sink_error

    @property
    def sinks(self) -> tuple[FrameSink, ...]:
        with self._lock:
            return tuple(self._sinks)

    def report(self, code: FrameErrorCode, cause: BaseException | str, style: str | None = None) -> None:
        """Count a failure; log it once per cause; tell ``on_error`` about what is new."""
        text = _describe(cause)
        key = (code, style, text[:200])
        with self._lock:
            self._errors += 1
            count = self._errors
            first = key not in self._causes
            if first and len(self._causes) < _MAX_CAUSES:
                self._causes.add(key)
            newly_failing = style is not None and code in ("style_failed", "style_timeout") and self._failing != style
            if newly_failing:
                self._failing = style
        where = f"style {style!r}: " if style else ""
        if first:
            exc_info = cause if isinstance(cause, BaseException) else None
            log.error("session %s: %s%s (%s; %d errors so far); frames pass through",
                      self.session_id, where, text, code, count, exc_info=exc_info)
        else:
            log.debug("session %s: %s%s again (%d errors so far)", self.session_id, where, text, count)
        if (first or newly_failing) and self.on_error is not None:
            try:
                self.on_error(FrameError(code, text, style))
            except Exception:
                log.exception("session %s: the error callback failed", self.session_id)

    def _succeeded(self, style: str) -> None:
        with self._lock:
            recovered = self._failing == style
            if recovered:
                self._failing = None
        if recovered:
            log.info("session %s: style %r works again", self.session_id, style)

    def check_sinks(self) -> str | None:
        """Drop sinks that report an ``error``; return :attr:`sink_error`."""
        for sink in self.sinks:
            error = getattr(sink, "error", None)
            if error:
                self._drop_sink(sink, str(error))
        return self.sink_error

    def _drop_sink(self, sink: FrameSink, why: str) -> None:
        with self._lock:
            if sink not in self._sinks:
                return
            self._sinks.remove(sink)
            if self._sink_error is None:
                self._sink_error = why
        self.report("sink_failed", f"output {type(sink).__name__} failed and was dropped: {why}")

    def _feed_sinks(self, image: RGBImage, pts_s: float) -> None:
        for sink in self.sinks:
            try:
                sink.submit(self.session_id, image, pts_s)
            except Exception as e:
                self._drop_sink(sink, _describe(e))
        self.check_sinks()

    def frame_out(self, received_at: float, result: ProcessedFrame | None) -> None:
        """Count one output frame (edited, or passed through when ``result`` is None)."""
        self.media_stats.frame_out(
            received_at=received_at,
            engine_ms=None if result is None else result.engine_ms,
            faces=None if result is None else result.faces,
            too_small=0 if result is None else result.too_small,
        )

    # --- per frame (worker thread) ---------------------------------------------------
    def process_rgb(self, rgb: RGBImage, pts_s: float) -> tuple[RGBImage, ProcessedFrame | None]:
        """Edit one RGB frame and hand the result to the sinks; a failure passes it through."""
        style, intensity = self.current()
        result: ProcessedFrame | None
        try:
            result = self.engine_session.process(rgb, style=style, intensity=intensity, timestamp=pts_s)
            out = result.image
        except Exception as e:
            self.report("style_failed", e, style)
            result, out = None, rgb
        else:
            self._succeeded(style)
        self._feed_sinks(out, pts_s)
        return out, result

    def process_frame(self, frame: av.VideoFrame) -> tuple[av.VideoFrame, ProcessedFrame | None]:
        """Edit one decoded video frame (``tricam serve``); same policy as :meth:`process_rgb`.

        A pass-through style skips the RGB round trip (two colour conversions, ~2-4 ms at
        640×480 here) unless a sink needs the pixels.
        """
        style, _ = self.current()
        try:
            passthrough = self.registry.get(style).info.passthrough
        except Exception as e:  # a style that vanished from the registry
            self.report("style_failed", e, style)
            return frame, None
        if passthrough and not self.sinks:
            return frame, None
        ts = frame_seconds(frame)
        try:
            rgb = to_rgb(frame)
        except Exception as e:
            self.report("bad_frame", e)
            return frame, None
        out, result = self.process_rgb(rgb, ts if ts is not None else time.monotonic())
        if out is rgb:  # unchanged: keep the decoded frame as is
            return frame, result
        return from_rgb(out, frame), result

    def passthrough_frame(self, frame: av.VideoFrame) -> av.VideoFrame:
        """A frame sent unedited while the engine is stuck; sinks still get it."""
        if self.sinks:
            ts = frame_seconds(frame)
            try:
                self._feed_sinks(to_rgb(frame), ts if ts is not None else 0.0)
            except Exception as e:
                self.report("bad_frame", e)
        return frame

    def passthrough_rgb(self, item: tuple[RGBImage, float]) -> tuple[RGBImage, float]:
        self._feed_sinks(*item)
        return item


Deliver = Callable[[F, float, "ProcessedFrame | None"], None]


async def run_frames(
    pipeline: Pipeline,
    take: Callable[[], Awaitable[tuple[F, float]]],
    work: Callable[[F], tuple[F, ProcessedFrame | None]],
    passthrough: Callable[[F], F],
    deliver: Deliver[F],
    *,
    executor: Executor | None,
    deadline_s: float = DEFAULT_DEADLINE_S,
) -> None:
    """Process frames until ``take`` raises :class:`MediaStreamError` (the input ended).

    ``take`` returns the newest input and when it was received; ``work`` edits one on a
    worker thread; ``passthrough`` makes the unedited output (on the loop); ``deliver``
    hands an output on. Never raises anything else: failures go to ``pipeline.report``.
    """
    loop = asyncio.get_running_loop()
    while True:
        try:
            item, received_at = await take()
        except MediaStreamError:
            return
        try:
            fut = loop.run_in_executor(executor, work, item)
            try:
                out, result = await asyncio.wait_for(asyncio.shield(fut), deadline_s)
            except TimeoutError:
                pipeline.report(
                    "style_timeout",
                    f"a frame took longer than {deadline_s:g} s; frames pass through until it returns",
                    pipeline.current()[0],
                )
                deliver(passthrough(item), received_at, None)
                await _pass_until_done(fut, take, passthrough, deliver)
                continue
            deliver(out, received_at, result)
        except MediaStreamError:
            return
        except Exception as e:  # the loop must outlive any bug in it
            pipeline.report("internal", e)
            try:
                deliver(item, received_at, None)
            except Exception:
                log.debug("passing a frame through after an error failed too", exc_info=True)


async def _pass_until_done(
    fut: asyncio.Future[Any],
    take: Callable[[], Awaitable[tuple[F, float]]],
    passthrough: Callable[[F], F],
    deliver: Deliver[F],
) -> None:
    while not fut.done():
        taking = asyncio.ensure_future(take())
        try:
            done, _ = await asyncio.wait({fut, taking}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not taking.done():
                taking.cancel()
                await asyncio.gather(taking, return_exceptions=True)
        if taking in done:
            item, received_at = taking.result()  # MediaStreamError ends the loop upstream
            deliver(passthrough(item), received_at, None)
    if not fut.cancelled() and fut.exception() is not None:  # work() catches its own; be sure
        log.debug("a late frame failed", exc_info=fut.exception())
