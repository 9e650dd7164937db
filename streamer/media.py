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
from concurrent.futures import Executor
from typing import Generic, TypeVar

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from engine.api import ProcessedFrame
from streamer.pipeline import DEFAULT_DEADLINE_S, Pipeline, from_rgb, run_frames, to_rgb

__all__ = ["FilteredTrack", "LatestSlot", "drain", "from_rgb", "to_rgb"]

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


class FilteredTrack(MediaStreamTrack):
    """The outgoing video track: the newest incoming frame, processed by a :class:`Pipeline`.

    Two tasks and two one-slot mailboxes: a reader drains aiortc's queue into ``_in``; a
    processor takes the newest frame from ``_in``, runs the engine on a worker thread and
    puts the result in ``_out``; ``recv`` (aiortc's encoder loop) takes from ``_out``. So
    the engine works on frame N+1 while the encoder compresses frame N, and a slow
    filter sets the output rate by itself (100 ms per frame → ~10 fps), never a backlog.
    """

    kind = "video"

    def __init__(
        self,
        source: MediaStreamTrack,
        pipeline: Pipeline,
        executor: Executor | None,
        *,
        deadline_s: float = DEFAULT_DEADLINE_S,
    ) -> None:
        super().__init__()
        self._source = source
        self._pipeline = pipeline
        self._executor = executor
        self._deadline_s = deadline_s
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
        except Exception as e:  # a decoder fault ends this track's input; say so, never silently
            self._pipeline.report("internal", e)
        finally:
            self._in.close()

    async def _process(self) -> None:
        pipeline = self._pipeline

        def deliver(out: av.VideoFrame, received_at: float, result: ProcessedFrame | None) -> None:
            if self._out.put((out, received_at, result)):  # the encoder fell behind the engine
                pipeline.media_stats.frame_dropped()

        try:
            await run_frames(pipeline, self._in.take, pipeline.process_frame, pipeline.passthrough_frame,
                             deliver, executor=self._executor, deadline_s=self._deadline_s)
        finally:
            self._out.close()

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        out, received_at, result = await self._out.take()
        self._pipeline.frame_out(received_at, result)
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
