"""``tricam eval recon``: figures of the 3D core against exact synthetic ground truth."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

DESCRIPTION = (
    "Measure the trained core on held-out synthetic heads made from --seed (or read from --data): "
    "PSNR/SSIM at the input view and at +-30 deg yaw on the head and on the whole image, depth error, "
    "semantic mIoU."
)

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="what", required=True, metavar="recon")
    rec = sub.add_parser("recon", help="single-image reconstruction: input view and +-30 deg")
    rec.add_argument("--seed", type=int, default=None, help="seed of the held-out heads to make")
    rec.add_argument("--count", type=int, default=32, help="number of heads")
    rec.add_argument("--data", type=Path, default=None,
                     help="a `tricam synth --views K` dataset instead of --seed (view 0 = input, others = side)")
    rec.add_argument("--bundle", type=Path, default=None, help="tricam-core bundle (default: the shipped one)")
    rec.add_argument("--device", default="cpu")
    rec.add_argument("--batch", type=int, default=8, help="heads per forward pass")
    rec.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    rec.add_argument("--sheet", type=Path, default=None, help="write a PNG contact sheet of the first heads here")
    rec.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    import torch

    from engine.bundle import BundleError
    from engine.evaluation.recon import eval_data, evaluate
    from engine.triplane.core import load_core

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    if args.count < 1:
        log.error("--count must be >= 1")
        return 2
    if args.seed is None and args.data is None:
        log.error("give --seed K (fresh held-out heads) or --data DIR")
        return 2
    try:
        core = load_core(args.bundle, device=args.device)
        data = eval_data(args.seed, args.count, args.data)
    except (BundleError, ValueError, FileNotFoundError, OSError) as e:
        log.error("%s", e)
        return 2
    from tqdm import tqdm

    with tqdm(total=data.heads, unit="head", disable=args.json or not sys.stderr.isatty()) as bar:
        figures = evaluate(core.reconstruct, data, batch=args.batch, progress=bar.update, device=args.device)
    figures["bundle"] = str(args.bundle or "default")
    figures["source"] = f"seed {args.seed}" if args.data is None else str(args.data)
    if args.sheet is not None:
        from engine.training.encoder import EncoderModel, sample_grid

        sample_grid(EncoderModel(core.encoder, core.generator.decoder, core.render_config), data, args.sheet, heads=8)
    if args.json:
        sys.stdout.write(json.dumps(figures, indent=1) + "\n")
    else:
        for k, v in figures.items():
            log.info("%-18s %s", k, f"{v:.4f}" if isinstance(v, float) else v)
    return 0
