"""Contact sheet: the trained 3D core on real photos (aligned crop, reconstruction, +-30 deg views).

    .venv/bin/python scripts/core_real_photos.py [--media ../shared/media] [--bundle DIR] --out DIR

For each photo with a face: the FFHQ-aligned crop at the encoder's input size, the
reconstruction at the photo's own camera, and novel views at the face's yaw -30 and +30
degrees (same pitch and roll), each composited over the crop's border colour. Writes
``real_photos.png`` and ``real_photos.json`` (per photo: pose, and PSNR of the reconstruction
against the crop over the reconstruction's own opacity > 0.5, a rough measure since real
photos have no ground truth). Skips cleanly when the media folder is absent.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch

log = logging.getLogger("core_real_photos")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--media", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "media")
    ap.add_argument("--bundle", type=Path, default=None, help="tricam-core bundle (default: the shipped one)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--scale", type=int, default=3, help="upscale factor of the sheet")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if not args.media.is_dir():
        log.warning("no media folder at %s: nothing to do", args.media)
        return 0

    from engine import camera
    from engine.bundle import BundleError
    from engine.evaluation.recon import psnr
    from engine.faces.cli import read_image
    from engine.faces.paste import crop
    from engine.faces.tracker import find_faces
    from engine.training.common import save_grid, to_uint8
    from engine.training.data import border_colour
    from engine.triplane.core import load_core

    torch.set_flush_denormal(True)
    try:
        core = load_core(args.bundle)
    except BundleError as e:
        log.error("%s", e)
        return 2
    s = core.input_size
    rows, report = [], []
    for path in sorted(args.media.iterdir()):
        if path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue
        image, _ = read_image(path)
        faces = find_faces(image, max_faces=1, crop_size=256)
        if not faces:
            report.append({"photo": path.name, "faces": 0})
            continue
        f = faces[0]
        crop01 = torch.from_numpy(crop(image, f, 256)).permute(2, 0, 1)[None].float() / 255
        x = core.prepare(crop01)
        cams = [torch.as_tensor(f.camera, dtype=torch.float32)]
        for dy in (-30.0, 30.0):
            cams.append(torch.as_tensor(camera.orbit_label(f.yaw + dy, f.pitch, f.roll), dtype=torch.float32))
        with torch.no_grad():
            out = core.reconstruct(x, cams[0][None], torch.stack(cams), s)
        bg = border_colour(x)
        views = out.composite(bg).clamp(0, 1)
        mask = (out.opacity[:1] > 0.5).float()
        report.append({"photo": path.name, "faces": len(faces), "yaw": round(f.yaw, 1), "pitch": round(f.pitch, 1),
                       "roll": round(f.roll, 1), "psnr_input_on_opacity": round(float(psnr(views[:1], x, mask)), 2)})
        rows.append([to_uint8(x[0]), *[to_uint8(v) for v in views]])
    args.out.mkdir(parents=True, exist_ok=True)
    if rows:
        save_grid(rows, args.out / "real_photos.png", scale=args.scale)
    (args.out / "real_photos.json").write_text(json.dumps({"columns": ["crop", "recon", "yaw-30", "yaw+30"],
                                                           "photos": report}, indent=1) + "\n")
    log.info("wrote %s (%d photos with a face)", args.out, len(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
