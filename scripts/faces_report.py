"""Faces on the shared real media: poses per photo, a contact sheet, and pose jitter on video.

Writes artifacts/faces/ (git-ignored): per-photo overlay and crops, contact_sheet.png and
report.json; prints the JSON. Needs ../shared/media (exits 2 with a message without it).

    .venv/bin/python scripts/faces_report.py [--crop-size 256]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.faces import FaceTracker, TrackerSettings, crop, find_faces, to_rgb  # noqa: E402
from engine.faces.draw import draw_faces  # noqa: E402

MEDIA = ROOT / ".." / "shared" / "media"
OUT = ROOT / "artifacts" / "faces"
MULTI = {"p14_selfie_multiface.jpg": 8}
TILE = 256


def fit(img: np.ndarray, side: int) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    s = side / max(h, w)
    small = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    out = np.full((side, side, 3), 32, np.uint8)
    y0, x0 = (side - small.shape[0]) // 2, (side - small.shape[1]) // 2
    out[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
    return out


def label(img: np.ndarray, text: str) -> np.ndarray:
    import cv2

    out = img.copy()
    cv2.putText(out, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def photos(crop_size: int) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    from PIL import Image

    rows, sheet_rows = [], []
    for path in sorted(MEDIA.glob("p*.*")):
        img = to_rgb(np.asarray(Image.open(path)))
        t0 = time.perf_counter()
        faces = find_faces(img, max_faces=MULTI.get(path.name, 1), crop_size=crop_size)
        dt = (time.perf_counter() - t0) * 1000
        d = OUT / path.stem
        d.mkdir(parents=True, exist_ok=True)
        overlay = draw_faces(img, faces)
        Image.fromarray(overlay).save(d / "overlay.png")
        tiles = [label(fit(overlay, TILE), f"{path.stem[:22]} ({len(faces)})")]
        for i, f in enumerate(faces):
            c = crop(img, f)
            Image.fromarray(c).save(d / f"crop_{i}.png")
            tiles.append(label(fit(c, TILE), f"y{f.yaw:+.0f} p{f.pitch:+.0f} r{f.roll:+.0f}"))
        sheet_rows.append(np.concatenate(tiles, axis=1))
        rows.append(
            {
                "image": path.name,
                "size": [int(img.shape[1]), int(img.shape[0])],
                "faces": len(faces),
                "ms": round(dt, 1),
                "poses": [
                    {
                        "yaw": round(f.yaw, 1),
                        "pitch": round(f.pitch, 1),
                        "roll": round(f.roll, 1),
                        "crop_square_px": round(f.size),
                    }
                    for f in faces
                ],
            }
        )
    return rows, sheet_rows


def video(crop_size: int) -> dict[str, Any]:
    import av

    path = MEDIA / "v01_talking_male.mp4"
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    out: dict[str, Any] = {"clip": path.name, "frames": len(frames), "size": list(frames[0].shape[1::-1])}
    for smooth in (False, True):
        tracker = FaceTracker(TrackerSettings(crop_size=crop_size, smooth=smooth))
        angles, times, cx = [], [], []
        try:
            for i, fr in enumerate(frames):
                t0 = time.perf_counter()
                r = tracker.track(fr, i / 25.0)
                times.append(time.perf_counter() - t0)
                if r.faces:
                    f = r.faces[0]
                    angles.append((f.yaw, f.pitch, f.roll))
                    cx.append(f.quad.as_vector())
        finally:
            tracker.close()
        a = np.array(angles)
        q = np.array(cx)
        # Jitter: std of frame-to-frame second differences (removes smooth motion, keeps shake).
        d2 = np.diff(a, n=2, axis=0)
        key = "smoothed" if smooth else "raw"
        out[key] = {
            "frames_with_face": len(a),
            "track_ms_median": round(float(np.median(times)) * 1000, 2),
            "track_ms_p95": round(float(np.percentile(times, 95)) * 1000, 2),
            "jitter_deg": {k: round(float(v), 3) for k, v in zip(("yaw", "pitch", "roll"), d2.std(0), strict=True)},
            "crop_centre_jitter_px": round(float(np.diff(q[:, :2], n=2, axis=0).std()), 3),
            "range_deg": {k: [round(float(lo), 1), round(float(hi), 1)] for k, lo, hi in zip(("yaw", "pitch", "roll"), a.min(0), a.max(0), strict=True)},
        }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--crop-size", type=int, default=256)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not MEDIA.is_dir():
        print(f"faces_report: {MEDIA} not found (the shared real-face media); nothing to report", file=sys.stderr)
        return 2
    from PIL import Image

    OUT.mkdir(parents=True, exist_ok=True)
    rows, sheet_rows = photos(args.crop_size)
    width = max(r.shape[1] for r in sheet_rows)
    sheet = np.concatenate(
        [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=16) for r in sheet_rows], axis=0
    )
    Image.fromarray(sheet).save(OUT / "contact_sheet.png")
    report = {"photos": rows, "video": video(args.crop_size), "contact_sheet": str(OUT / "contact_sheet.png")}
    (OUT / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
