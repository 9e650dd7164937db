"""``tricam train encoder|generator|bundle``: thin command lines over :mod:`engine.training`.

A run directory holds the checkpoint (resumed automatically when the same command is run
again), ``losses.png``, ``samples.png`` and, at the end, ``summary.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

DESCRIPTION = (
    "Train the 3D core on synthetic heads: the single-image tri-plane encoder (with the shared decoder and "
    "semantic head), then the tri-plane generator and the W encoder; 'bundle' packs both runs into a "
    "tricam-core bundle. Runs checkpoint often and resume where they stopped."
)

log = logging.getLogger(__name__)

DEFAULT_DATA = {"count": 6000, "views": 4, "size": 64, "seed": 1000}
"""The dataset the shipped core was trained on (``tricam synth --count 6000 --views 4 --size 64 --seed 1000``)."""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="run directory (resumes if it holds a checkpoint)")
    p.add_argument("--data", type=Path, default=None,
                   help="a `tricam synth --views K` dataset; default: render the shipped recipe into OUT/data first")
    p.add_argument("--steps", type=int, default=None, help="total optimisation steps")
    p.add_argument("--batch", type=int, default=None, help="heads per step")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (cosine decay)")
    p.add_argument("--seed", type=int, default=0, help="seed for initialisation and batch order")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--amp", action="store_true", help="bf16 autocast (GPUs)")
    p.add_argument("--preset", default="tiny", help="generator preset (tiny; eg3d on a GPU)")
    p.add_argument("--max-heads", type=int, default=None, help="use only the first N heads of the data")
    p.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints")
    p.add_argument("--val-every", type=int, default=500, help="steps between held-out checks and sample grids")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="what", required=True, metavar="encoder|generator|bundle")
    enc = sub.add_parser("encoder", help="image -> tri-plane encoder, shared decoder, semantic head")
    _common(enc)
    enc.add_argument("--size", type=int, default=64, help="encoder input side (the data's image size)")
    enc.add_argument("--render-resolution", type=int, default=64, help="raw render side for validation")
    enc.add_argument("--semantic-steps", type=int, default=300,
                     help="final steps that tune only the decoder's semantic head")
    enc.add_argument("--perceptual", type=Path, default=None,
                     help="LPIPS weights (safetensors, local path) to add a perceptual loss")
    gen = sub.add_parser("generator", help="tri-plane generator + W encoder, decoder shared from an encoder run")
    _common(gen)
    gen.add_argument("--encoder-run", type=Path, required=True, help="a `tricam train encoder` run directory")
    bun = sub.add_parser("bundle", help="pack an encoder run and a generator run into a tricam-core bundle")
    bun.add_argument("--encoder-run", type=Path, required=True)
    bun.add_argument("--generator-run", type=Path, required=True)
    bun.add_argument("--out", type=Path, required=True, help="bundle directory to write")
    bun.add_argument("--eval-seed", type=int, default=424242, help="seed of the held-out heads for the manifest's figures")
    bun.add_argument("--eval-count", type=int, default=64, help="held-out heads for the manifest's figures")
    bun.add_argument("--preset", default="tiny")


def _data(args: argparse.Namespace) -> Path:
    if args.data is not None:
        if not (args.data / "index.json").is_file():
            raise FileNotFoundError(f"--data {args.data}: no index.json (make one with `tricam synth --views 4`)")
        return Path(args.data)
    target = Path(args.out) / "data"
    if (target / "index.json").is_file():
        return target
    from tqdm import tqdm

    from engine.synth.dataset import SynthConfig, generate

    cfg = SynthConfig(count=DEFAULT_DATA["count"], views=DEFAULT_DATA["views"], size=DEFAULT_DATA["size"],
                      seed=DEFAULT_DATA["seed"])
    log.info("no --data: rendering the default dataset (%s) into %s", DEFAULT_DATA, target)
    with tqdm(total=cfg.images, unit="img", disable=args.no_progress, desc="data") as bar:
        generate(cfg, target, overwrite=True, progress=bar.update)
    return target


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    out: dict[str, object] = {}
    for name in ("steps", "batch", "lr", "max_heads"):
        v = getattr(args, name)
        if v is not None:
            out[name] = v
    return out


def run(args: argparse.Namespace) -> int:
    from engine.training.common import TrainingError

    try:
        if args.what == "bundle":
            return _bundle(args)
        if args.device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise TrainingError(f"--device {args.device}: CUDA is not available here")
        data = _data(args)
        common = dict(data=data, out=args.out, seed=args.seed, threads=args.threads, device=args.device,
                      amp=args.amp, preset=args.preset, checkpoint_every=args.checkpoint_every,
                      val_every=args.val_every, **_overrides(args))
        if args.what == "encoder":
            from engine.training.encoder import EncoderTrainConfig, train_encoder
            from engine.triplane.encoder import EncoderConfig

            ecfg = EncoderTrainConfig(encoder=EncoderConfig(input_size=args.size),
                                      render_resolution=args.render_resolution, perceptual=args.perceptual,
                                      semantic_steps=args.semantic_steps,
                                      **common)
            summary = train_encoder(ecfg, progress=not args.no_progress)
        else:
            from engine.training.generator import GeneratorTrainConfig, train_generator

            gcfg = GeneratorTrainConfig(encoder_run=args.encoder_run, **common)
            summary = train_generator(gcfg, progress=not args.no_progress)
    except (TrainingError, FileNotFoundError, ValueError, KeyError) as e:
        log.error("%s", e)
        return 2
    log.info("summary: %s", args.out / "summary.json")
    log.info("validation: %s", json.dumps(summary.get("validation", {})))
    return 0


def _bundle(args: argparse.Namespace) -> int:
    from engine.training.package import package_core

    manifest = package_core(args.encoder_run, args.generator_run, args.out, preset=args.preset,
                            eval_seed=args.eval_seed, eval_count=args.eval_count)
    log.info("wrote %s: %s", args.out, json.dumps(manifest["provenance"].get("evaluation", {})))
    return 0
