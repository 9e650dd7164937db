"""Benchmark the per-frame face path on 640x480 frames: landmarks + pose + crop + paste-back.

Frames come from the talking-head clip in ../shared/media when present (letterboxed into
640x480), else from scikit-image's astronaut drifting across a 640x480 frame. Prints JSON.

    .venv/bin/python scripts/bench_faces.py [--frames 300] [--crop-size 256]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.faces import FaceTracker, TrackerSettings, crop, paste  # noqa: E402

CLIP = ROOT / ".." / "shared" / "media" / "v01_talking_male.mp4"
W, H = 640, 480


def letterbox(rgb: np.ndarray) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    s = min(W / w, H / h)
    small = cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    out = np.zeros((H, W, 3), np.uint8)
    y0, x0 = (H - small.shape[0]) // 2, (W - small.shape[1]) // 2
    out[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
    return out


def clip_frames() -> Iterator[np.ndarray]:
    import av

    with av.open(str(CLIP)) as c:
        for f in c.decode(video=0):
            yield letterbox(f.to_ndarray(format="rgb24"))


def astronaut_frames(n: int) -> Iterator[np.ndarray]:
    from skimage.data import astronaut

    a = astronaut()[:, :, :3]
    for i in range(n):
        out = np.zeros((H, W, 3), np.uint8)
        dx = int(64 + 40 * np.sin(i / 20))
        out[:, dx : dx + 512] = a[16:496, : min(512, W - dx)]
        yield out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--crop-size", type=int, default=256)
    ap.add_argument("--warmup", type=int, default=10)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    if CLIP.is_file():
        source = f"{CLIP.name} letterboxed to {W}x{H}"
        frames = list(clip_frames())
    else:
        source = f"skimage astronaut drifting in {W}x{H}"
        frames = list(astronaut_frames(args.frames))
    while len(frames) < args.frames + args.warmup:  # loop the clip
        frames += frames
    frames = frames[: args.frames + args.warmup]

    tracker = FaceTracker(TrackerSettings(crop_size=args.crop_size))
    total, t_track, t_crop, t_paste = [], [], [], []
    faces_seen = 0
    try:
        for i, frame in enumerate(frames):
            t0 = time.perf_counter()
            res = tracker.track(frame, i / 25.0)
            t1 = time.perf_counter()
            out = frame
            for face in res.faces:
                c = crop(frame, face)
                t2 = time.perf_counter()
                out = paste(out, face, c)
                t3 = time.perf_counter()
            t_end = time.perf_counter()
            if i < args.warmup:
                continue
            faces_seen += len(res.faces)
            total.append(t_end - t0)
            t_track.append(t1 - t0)
            if res.faces:
                t_crop.append(t2 - t1)
                t_paste.append(t3 - t2)
    finally:
        tracker.close()

    def ms(xs: list[float], q: float) -> float:
        return round(float(np.percentile(xs, q)) * 1000.0, 2) if xs else float("nan")

    print(
        json.dumps(
            {
                "source": source,
                "frames": len(total),
                "frames_with_face": len(t_crop),
                "crop_size": args.crop_size,
                "total_ms": {"median": ms(total, 50), "p95": ms(total, 95), "max": ms(total, 100)},
                "landmarks_pose_smoothing_ms": {"median": ms(t_track, 50), "p95": ms(t_track, 95)},
                "crop_ms": {"median": ms(t_crop, 50), "p95": ms(t_crop, 95)},
                "paste_ms": {"median": ms(t_paste, 50), "p95": ms(t_paste, 95)},
                "target_median_ms": 15.0,
                "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs",
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
