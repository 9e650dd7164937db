"""Benchmark the tri-plane generator on this machine: forward time, parameters, FLOPs, peak RSS.

Usage:
    .venv/bin/python scripts/bench_triplane.py --preset tiny --runs 10
    .venv/bin/python scripts/bench_triplane.py --preset eg3d --runs 1

Prints one JSON object. Weights are random (timing does not depend on their values).
FLOPs come from torch.utils.flop_counter.FlopCounterMode over one z -> image forward:
it counts matmul/linear/conv/conv-transpose (2 FLOPs per multiply-add) and not
element-wise ops, grid_sample, sort or pooling.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import platform
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from engine.camera import orbit_label, rays
from engine.triplane.generator import TriplaneGenerator
from engine.triplane.layers import count_parameters
from engine.triplane.presets import PRESETS, preset
from engine.triplane.renderer import RenderNoise, to_image

log = logging.getLogger("bench_triplane")


def staged_forward(
    g: TriplaneGenerator, z: torch.Tensor, camera: torch.Tensor, *, count_flops: bool = False
) -> tuple[dict[str, float], dict[str, int]]:
    """One z -> image forward; seconds per stage and (optionally) FLOPs per stage."""
    cfg = g.config.render
    seconds: dict[str, float] = {}
    flops: dict[str, int] = {}

    def stage(name: str, fn: Callable[[], Any]) -> Any:
        counter = FlopCounterMode(display=False) if count_flops else contextlib.nullcontext()
        t = time.perf_counter()
        with counter:
            out = fn()
        seconds[name] = time.perf_counter() - t
        if isinstance(counter, FlopCounterMode):
            flops[name] = int(counter.get_total_flops())
        return out

    ws = stage("mapping", lambda: g.map(z=z, c=camera))
    planes = stage("synthesis", lambda: g.synthesis(ws=ws, noise_mode="const"))

    def render() -> torch.Tensor:
        origins, dirs = rays(camera, cfg.resolution)
        noise = RenderNoise.random(cfg, batch=z.shape[0])
        out = g.renderer(planes=planes, decoder=g.decoder, origins=origins, directions=dirs, noise=noise)
        return to_image(out.features, resolution=cfg.resolution)

    features = stage("render_decode", render)
    stage(
        "superres", lambda: g.superres(rgb=features[:, :3], features=features, w=ws[:, -1], noise_mode="none")
    )
    seconds["total"] = sum(seconds.values())
    if count_flops:
        flops["total"] = sum(flops.values())
    return seconds, flops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--runs", type=int, default=10, help="timed forwards after one warm-up")
    ap.add_argument("--no-warmup", action="store_true", help="skip the warm-up (e.g. for eg3d on CPU)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    cfg = preset(args.preset)
    g = TriplaneGenerator(cfg).eval()
    z = torch.randn(1, cfg.mapping.z_dim)
    camera = torch.tensor(orbit_label(15.0, -5.0), dtype=torch.float32)[None]

    result: dict[str, Any] = {
        "preset": args.preset,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "output": [3, cfg.superres.output_resolution, cfg.superres.output_resolution],
        "neural_resolution": cfg.render.resolution,
        "samples_per_ray": [cfg.render.depth_samples, cfg.render.importance_samples],
        "params": {
            name: count_parameters(getattr(g, name))
            for name in ("mapping", "backbone", "decoder", "superres")
        },
        "s_dims": g.stylespace.size,
        "num_ws": g.num_ws,
    }
    result["params"]["total"] = count_parameters(g)

    with torch.no_grad():
        if not args.no_warmup:
            staged_forward(g, z, camera)
        times = [staged_forward(g, z, camera)[0] for _ in range(max(args.runs, 1))]
        _, flops = staged_forward(g, z, camera, count_flops=True)
    result["flops_per_frame"] = flops
    result["flops_method"] = "torch.utils.flop_counter.FlopCounterMode (matmul/conv only)"
    result["seconds"] = {
        stage: {"median": statistics.median(t[stage] for t in times), "min": min(t[stage] for t in times)}
        for stage in times[0]
    }
    result["runs"] = len(times)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
