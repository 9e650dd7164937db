"""``tricam synth``: render a synthetic-head dataset (shards, index, card, contact sheet)."""

from __future__ import annotations

import argparse
import logging

DESCRIPTION = (
    "Render procedural 3D heads through EG3D cameras: RGB, depth, semantic labels, cameras, "
    "attributes and captions, as safetensors shards with a JSON index, a dataset card and a contact sheet."
)

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, required=True, help="heads (or clips with --video, pairs with --pairs)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (16..1024)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (same seed, same dataset)")
    parser.add_argument("--out", required=True, help="output directory (must be empty unless --overwrite)")
    parser.add_argument("--views", type=int, default=1, help="cameras per head (multi-view sets)")
    parser.add_argument("--video", type=int, default=0, metavar="FRAMES", help="render smooth clips of FRAMES")
    parser.add_argument("--pairs", action="store_true", help="render edit pairs (one attribute changed)")
    parser.add_argument("--batch", type=int, default=0, help="images per render call (0 = automatic)")
    parser.add_argument("--shard-size", type=int, default=1000, help="images per shard file")
    parser.add_argument("--supersample", type=int, default=1, help="s x s rays per pixel for RGB (1..4)")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from engine.synth.dataset import SynthConfig, generate

    cfg = SynthConfig(
        count=args.count, size=args.size, seed=args.seed, views=args.views, video=args.video, pairs=args.pairs,
        batch=args.batch, shard_size=args.shard_size, supersample=args.supersample,
    )
    try:
        cfg.validate()
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"--device {args.device}: CUDA is not available here")
    except ValueError as e:
        log.error("%s", e)
        return 2
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    with tqdm(total=cfg.images, unit="img", disable=args.no_progress) as bar:
        try:
            index = generate(cfg, args.out, overwrite=args.overwrite, device=args.device, progress=bar.update)
        except (FileExistsError, ValueError) as e:
            log.error("%s", e)
            return 2
    log.info("index: %s/index.json (%d images)", args.out, index["count"])
    return 0
