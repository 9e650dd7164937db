"""Which S channels of the trained core move which semantic classes (report.json + report.png).

Pushes every editable S channel by --strength std on --heads prior heads and measures, per
class, the colour and area change of the frontal raw render (engine/evaluation/stylespace.py).

    .venv/bin/python scripts/stylespace_report.py [--bundle DIR] [--heads 8] [--seed 0] --out DIR
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("stylespace_report")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=None, help="tricam-core bundle (default: the shipped one)")
    parser.add_argument("--heads", type=int, default=8, help="prior heads each channel is pushed on")
    parser.add_argument("--seed", type=int, default=0, help="seed of the prior heads")
    parser.add_argument("--size", type=int, default=64, help="side of the frontal raw render")
    parser.add_argument("--strength", type=float, default=3.0, help="push, in std of the channel over 64 heads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (report.json, report.png)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    import torch

    from engine.bundle import BundleError
    from engine.evaluation.stylespace import channel_report, report_png
    from engine.training.common import write_json
    from engine.triplane.core import load_core

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    try:
        core = load_core(args.bundle, device=args.device)
        report = channel_report(core, heads=args.heads, seed=args.seed, size=args.size, strength=args.strength)
    except (BundleError, ValueError, OSError) as e:
        log.error("%s", e)
        return 2
    report["bundle"] = str(args.bundle or "default")
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "report.json", report)
    report_png(core, report, args.out / "report.png")
    for name, entries in report["per_class"].items():
        top = entries[0]
        log.info("%-10s %2d channels attributed; top #%d (%s) rgb %.4f area %+.4f", name,
                 sum(1 for c in report["channels"] if c["class"] == name), top["channel"], top["layer"],
                 top["rgb_change"], top["area_change"])
    log.info("wrote %s and %s", args.out / "report.json", args.out / "report.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
