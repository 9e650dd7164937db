"""The default engine (face tracking included) behind the real server: a face-aware style over a
real aiortc call reports the faces it found, and frames without a face pass through."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from engine.registry import build_engine
from tests.streamer.conftest import StartServer


async def _stats_until(caller, pred, tries: int = 40):  # type: ignore[no-untyped-def]
    last = None
    for _ in range(tries):
        last = await caller.request({"type": "get_stats"}, "stats")
        if pred(last):
            return last
        await caller.wait_frames(2)
    raise AssertionError(f"stats never matched: {last}")


@pytest.mark.timeout(90)
async def test_pose_style_tracks_the_face_over_a_real_call(start_server: StartServer) -> None:
    server = await start_server(build_engine())
    caller = await server.connect()
    await caller.expect("hello")
    face = data.astronaut()  # 512×512, one real face
    await caller.call(512, 512, fps=15, image=face)
    await caller.wait_frames(5, timeout=15)
    plain = await caller.request({"type": "get_stats"}, "stats")
    assert plain["faces"] is None  # `none` does not look for faces

    state = await caller.request({"type": "set_style", "style": "pose"}, "state")
    assert state["style"] == "pose"
    stats = await _stats_until(caller, lambda m: m["style"] == "pose" and m["faces"] == 1)
    assert stats["too_small"] == 0
    frames = await caller.wait_frames(5, timeout=15)
    assert all((f.width, f.height) == (512, 512) for f in frames)


@pytest.mark.timeout(90)
async def test_pose_style_without_a_face_passes_frames_and_counts_zero(start_server: StartServer) -> None:
    server = await start_server(build_engine())
    caller = await server.connect()
    await caller.expect("hello")
    await caller.request({"type": "set_style", "style": "pose"}, "state")
    await caller.call(320, 240, fps=15, image=np.full((240, 320, 3), 90, np.uint8))
    await caller.wait_frames(5, timeout=15)
    stats = await _stats_until(caller, lambda m: m["faces"] == 0)
    assert stats["style"] == "pose"
    # Nothing to draw on: the grey frame comes back grey (VP8 round trip tolerance).
    mean = caller.frames[-1].mean_rgb
    assert np.all(np.abs(mean - 90) < 6), mean
