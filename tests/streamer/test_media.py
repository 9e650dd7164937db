"""The media path without a network: mailbox, stats, RGB conversion, the pipeline."""

from __future__ import annotations

import asyncio
from fractions import Fraction

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from engine.api import Engine, StyleRegistry
from engine.styles.basic import Bronze, PassThrough
from streamer.media import LatestSlot, from_rgb, to_rgb
from streamer.pipeline import Pipeline
from streamer.stats import SessionStats
from tests.streamer.conftest import FakeSink


async def test_latest_slot_keeps_only_newest() -> None:
    slot: LatestSlot[int] = LatestSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True  # 1 was never taken: dropped
    assert slot.put(3) is True
    assert await slot.take() == 3
    waiter = asyncio.ensure_future(slot.take())
    await asyncio.sleep(0)
    assert not waiter.done()
    assert slot.put(4) is False
    assert await waiter == 4
    slot.put(5)
    slot.close()
    assert await slot.take() == 5  # what is there is still delivered
    with pytest.raises(MediaStreamError):
        await slot.take()


def test_stats_windows() -> None:
    now = [100.0]
    s = SessionStats(clock=lambda: now[0])
    for i in range(30):
        now[0] = 100.0 + i / 30
        s.frame_in()
        s.frame_out(received_at=now[0] - 0.010, engine_ms=2.0, faces=None, too_small=0)
    s.frame_dropped()
    snap = s.snapshot()
    assert snap["fps_in"] == 30.0 and snap["fps_out"] == 30.0
    assert snap["latency_ms"] == pytest.approx(10.0) and snap["engine_ms"] == 2.0
    assert (snap["dropped"], snap["frames_in"], snap["frames_out"]) == (1, 30, 30)
    now[0] += 5.0  # nothing in the last second
    snap = s.snapshot()
    assert snap["fps_out"] == 0.0 and snap["latency_ms"] is None and snap["frames_out"] == 30


@pytest.mark.parametrize("size", [(641, 479), (16, 16), (333, 201), (2, 2)])
@pytest.mark.parametrize("fmt", ["yuv420p", "rgb24", "nv12"])
def test_rgb_round_trip_keeps_size_and_time(size: tuple[int, int], fmt: str) -> None:
    w, h = size
    rng = np.random.default_rng(0)
    src = av.VideoFrame.from_ndarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), format="rgb24")
    frame = src.reformat(format=fmt) if fmt != "rgb24" else src
    frame.pts, frame.time_base = 1234, Fraction(1, 90000)
    rgb = to_rgb(frame)
    assert rgb.shape == (h, w, 3) and rgb.dtype == np.uint8
    out = from_rgb(rgb, frame)
    assert (out.width, out.height, out.pts, out.time_base) == (w, h, 1234, Fraction(1, 90000))
    # The encoder's conversion to yuv420p works at odd sizes too.
    assert out.reformat(format="yuv420p").width == w


def _frame(w: int = 64, h: int = 48) -> av.VideoFrame:
    img = np.zeros((h, w, 3), np.uint8)
    img[...] = (90, 150, 220)  # bluish and bright: bronze turns it clearly red-brown
    f = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
    f.pts, f.time_base = 3000, Fraction(1, 90000)
    return f


def test_pipeline_passthrough_skips_conversion_and_bronze_edits() -> None:
    engine = Engine(StyleRegistry([PassThrough(), Bronze()]))
    pipe = Pipeline("s1", engine.registry, engine.open_session())
    f = _frame()
    out, result = pipe.process_frame(f)
    assert out is f and result is None  # style none: the decoded frame goes straight back
    pipe.set_style("bronze", 1.0)
    out, result = pipe.process_frame(f)
    assert result is not None and out is not f
    assert (out.width, out.height, out.pts, out.time_base) == (64, 48, 3000, Fraction(1, 90000))
    r, _, b = to_rgb(out).reshape(-1, 3).mean(axis=0)
    assert r > b + 40
    assert pipe.stats()["style"] == "bronze"


def test_pipeline_feeds_sinks_even_for_passthrough() -> None:
    engine = Engine(StyleRegistry([PassThrough(), Bronze()]))
    sink = FakeSink()
    pipe = Pipeline("s2", engine.registry, engine.open_session(), sinks=[sink])
    out, _ = pipe.process_frame(_frame(65, 49))
    assert sink.frames == [("s2", (49, 65, 3), pytest.approx(3000 / 90000))]
    assert (out.width, out.height) == (65, 49)
