"""Benchmark the trained 3D core per aligned crop: encode, raw render, W prediction. Prints JSON.

    .venv/bin/python scripts/bench_core.py [--bundle DIR] [--runs 20] [--threads 2] [--resolution 64]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=None)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resolution", type=int, default=0, help="render side (0 = the bundle's)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)

    import resource

    import torch

    from engine.camera import orbit_label
    from engine.triplane.core import load_core

    torch.set_flush_denormal(True)
    torch.set_num_threads(args.threads)
    core = load_core(args.bundle, device=args.device)
    res = args.resolution or core.render_resolution
    crop = torch.rand(1, 3, 256, 256, device=args.device)
    cam = torch.as_tensor(orbit_label(10.0, 5.0), dtype=torch.float32, device=args.device)[None]

    def timed(fn: object) -> list[float]:
        out = []
        for i in range(args.runs + 2):
            t0 = time.perf_counter()
            fn()  # type: ignore[operator]
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            if i >= 2:  # two warm-up calls
                out.append((time.perf_counter() - t0) * 1000)
        return out

    with torch.no_grad():
        planes = core.encode(crop, cam)
        enc = timed(lambda: core.encode(crop, cam))
        ren = timed(lambda: core.render(planes, cam, res))
        wpr = timed(lambda: core.ws_from_image(crop))
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in core.modules().items()}
    result = {
        "device": args.device,
        "threads": args.threads,
        "render_resolution": res,
        "encode_ms_median": round(statistics.median(enc), 2),
        "render_ms_median": round(statistics.median(ren), 2),
        "encode_plus_render_ms_median": round(statistics.median(enc) + statistics.median(ren), 2),
        "w_encoder_ms_median": round(statistics.median(wpr), 2),
        "params": params,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "runs": args.runs,
    }
    sys.stdout.write(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
