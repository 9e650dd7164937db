"""Benchmark the synthetic-head renderer: images/s at given sizes, and a dataset run.

    .venv/bin/python scripts/bench_synth.py --sizes 64 128 --images 256 --threads 1
    .venv/bin/python scripts/bench_synth.py --dataset 2000 --size 64

Prints one JSON object. Throughput excludes the first (warm-up) batch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engine.synth import params as P  # noqa: E402
from engine.synth.dataset import Job, SynthConfig, generate, render_jobs  # noqa: E402


def bench_render(size: int, images: int, supersample: int, batch: int) -> dict[str, float]:
    jobs = [Job(P.sample_head(0, i), P.sample_views(0, i, 1)[0], {}) for i in range(images + batch)]
    render_jobs(jobs[:batch], size, supersample)  # warm-up
    t = time.perf_counter()
    for k in range(batch, len(jobs), batch):
        render_jobs(jobs[k: k + batch], size, supersample)
    dt = time.perf_counter() - t
    return {"size": size, "supersample": supersample, "images": images, "seconds": round(dt, 3),
            "images_per_s": round(images / dt, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[64, 128])
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--supersample", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    ap.add_argument("--dataset", type=int, default=0, help="also time a full `generate` of this many images")
    ap.add_argument("--size", type=int, default=64, help="image size for --dataset")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    res: dict[str, object] = {
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "load_avg_1m_start": os.getloadavg()[0],
    }
    res["render"] = [
        bench_render(s, args.images, args.supersample, max(8, min(64, 64 * 64 * 64 // (s * s))))
        for s in args.sizes
    ]
    if args.dataset:
        with tempfile.TemporaryDirectory() as d:
            cfg = SynthConfig(count=args.dataset, size=args.size, seed=0)
            t = time.perf_counter()
            index = generate(cfg, d)
            dt = time.perf_counter() - t
            size_mb = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)) / 1e6
        res["dataset"] = {
            "images": index["count"], "size": args.size, "seconds": round(dt, 2),
            "images_per_s": round(index["count"] / dt, 2), "mb_on_disk": round(size_mb, 1),
            "extrapolated_20k_minutes": round(20000 / (index["count"] / dt) / 60, 2),
        }
    res["load_avg_1m_end"] = os.getloadavg()[0]
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main())
