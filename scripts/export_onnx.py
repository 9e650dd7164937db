"""Export a tri-plane generator's synthesis, render and superres graphs to ONNX and check parity.

Usage:
    .venv/bin/python scripts/export_onnx.py --preset tiny --out artifacts/onnx/tiny
    .venv/bin/python scripts/export_onnx.py --bundle path/to/bundle --out artifacts/onnx/mine

Writes synthesis.onnx, render.onnx, superres.onnx and contracts.json (input/output names and
shapes), then runs each graph in ONNX Runtime (CPU) against PyTorch and prints the relative
error (max |onnx - torch| / max |torch|) per output as JSON. Exits 1 if any exceeds --tolerance.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from engine.bundle import BundleError
from engine.triplane.export import DEFAULT_OPSET, check_all, export_all
from engine.triplane.generator import TriplaneGenerator
from engine.triplane.io import load_generator
from engine.triplane.presets import PRESETS, preset


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset", choices=sorted(PRESETS), help="random weights of a preset (seed 0)")
    src.add_argument("--bundle", type=Path, help="a generator bundle directory")
    ap.add_argument("--out", type=Path, required=True, help="output directory")
    ap.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--skip-check", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    if args.bundle is not None:
        try:
            generator, _ = load_generator(args.bundle)
        except BundleError as e:
            logging.error("%s", e)
            return 2
    else:
        torch.manual_seed(0)
        generator = TriplaneGenerator(preset(args.preset)).eval()
    paths = export_all(generator, args.out, opset=args.opset)
    logging.info("wrote %s", ", ".join(str(p) for p in paths))
    if args.skip_check:
        return 0
    try:
        report = check_all(generator, args.out, tolerance=args.tolerance)
    except RuntimeError as e:
        logging.error("%s", e)
        return 1
    print(json.dumps([asdict(p) for p in report], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
