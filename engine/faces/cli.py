"""``tricam inspect IMAGE``: faces in one image, their pose, EG3D camera and aligned crop."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DESCRIPTION = (
    "Find faces in an image (largest first): head pose in degrees (EG3D signs), the 25-number "
    "EG3D camera label, bounding box, and the FFHQ-aligned crop. Exit 0 whether or not faces "
    "are found; non-zero only when the image cannot be read."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", type=Path, help="image file (any format Pillow reads)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.add_argument("--out", type=Path, help="write crop_<i>.png and overlay.png into this folder")
    parser.add_argument("--max-faces", type=int, default=1, help="report up to N faces (default 1)")
    parser.add_argument("--crop-size", type=int, default=256, help="aligned crop side, 64..512 (default 256)")
    parser.add_argument(
        "--min-face-px", type=float, default=64.0,
        help="faces whose crop square is smaller than this are flagged too_small (default 64)",
    )


def read_image(path: Path) -> tuple[Any, dict[str, Any]]:
    """RGB uint8 array and a description; raises OSError/ValueError when unreadable."""
    import numpy as np
    from PIL import Image, ImageOps

    from engine.faces.landmarks import to_rgb

    with Image.open(path) as f:
        f.load()
        info: dict[str, Any] = {"path": str(path), "mode": f.mode, "format": f.format}
        im: Image.Image = ImageOps.exif_transpose(f)  # phone photos: honour the EXIF orientation
        if im.mode not in ("L", "RGB", "RGBA", "I;16"):
            im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
        arr = to_rgb(np.asarray(im))
    info.update({"width": int(arr.shape[1]), "height": int(arr.shape[0])})
    return arr, info


def run(args: argparse.Namespace) -> int:
    from PIL import Image

    from engine.faces.align import MAX_CROP, MIN_CROP
    from engine.faces.draw import draw_faces
    from engine.faces.paste import crop
    from engine.faces.tracker import find_faces

    if not (MIN_CROP <= args.crop_size <= MAX_CROP):
        sys.stderr.write(f"tricam inspect: --crop-size must be in [{MIN_CROP}, {MAX_CROP}]\n")
        return 2
    if args.max_faces < 1:
        sys.stderr.write("tricam inspect: --max-faces must be >= 1\n")
        return 2
    try:
        image, info = read_image(args.image)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        sys.stderr.write(f"tricam inspect: cannot read image {str(args.image)!r}: {e}\n")
        return 1
    faces = find_faces(
        image, max_faces=args.max_faces, crop_size=args.crop_size, min_face_px=args.min_face_px
    )
    result = {"faces": [f.to_json() for f in faces], "image": info}
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        files = []
        for i, f in enumerate(faces):
            p = args.out / f"crop_{i}.png"
            Image.fromarray(crop(image, f)).save(p)
            files.append(str(p))
        p = args.out / "overlay.png"
        Image.fromarray(draw_faces(image, faces)).save(p)
        files.append(str(p))
        result["files"] = files
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        lines = [f"{info['path']}: {info['width']}x{info['height']}, {len(faces)} face(s)"]
        for i, f in enumerate(faces):
            x0, y0, x1, y1 = f.bbox
            lines.append(
                f"  face {i}: yaw {f.yaw:+.1f}  pitch {f.pitch:+.1f}  roll {f.roll:+.1f} deg; "
                f"box ({x0:.0f},{y0:.0f})-({x1:.0f},{y1:.0f}); crop square {f.size:.0f}px"
                + (" (too small to edit)" if f.too_small else "")
            )
        if args.out is not None:
            lines.append(f"  wrote {len(result['files'])} file(s) to {args.out}")
        sys.stdout.write("\n".join(lines) + "\n")
    return 0
