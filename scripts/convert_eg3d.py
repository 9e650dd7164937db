"""Convert an EG3D network pickle (e.g. ffhq512-128.pkl) into a tricam generator bundle.

Usage:
    .venv/bin/python scripts/convert_eg3d.py ffhq512-128.pkl --out artifacts/bundles/eg3d-ffhq512

The pickle is read with a restricted unpickler: no pickled code runs (EG3D's embedded module
sources are hashed, never executed) and any global outside the allow-list is refused. The
network (G_ema by default) is mapped onto TriplaneGenerator and checked key by key and shape
by shape. Our semantic head has no EG3D counterpart and stays untrained (recorded in the
bundle's provenance). See docs/triplane.md, "EG3D import".

Exit status: 0 written, 2 refused (the message says why).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from engine.triplane.eg3d_import import EG3DImportError, convert_to_bundle
from engine.triplane.presets import PRESETS

log = logging.getLogger("convert_eg3d")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pkl", type=Path, help="EG3D network pickle")
    ap.add_argument("--out", type=Path, required=True, help="bundle directory to write")
    ap.add_argument(
        "--preset",
        default="eg3d",
        choices=["auto", *sorted(PRESETS)],
        help="require the pickle to match this preset ('auto': keep the pickle's own config)",
    )
    ap.add_argument("--semantic-classes", type=int, default=12, help="K of the (untrained) semantic head")
    ap.add_argument("--network", default="G_ema", help="network in the pickle (default G_ema)")
    ap.add_argument(
        "--render-at-sr-input",
        action="store_true",
        help="accept a neural rendering resolution below the SR input; render at the SR input",
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the semantic head's initialisation")
    ap.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    try:
        result = convert_to_bundle(
            args.pkl,
            args.out,
            overwrite=args.overwrite,
            preset=args.preset,
            semantic_classes=args.semantic_classes,
            network=args.network,
            render_at_sr_input=args.render_at_sr_input,
            seed=args.seed,
        )
    except EG3DImportError as e:
        log.error("%s: %s", args.pkl, e)
        return 2
    for note in result.notes:
        log.warning("%s", note)
    log.info(
        "wrote %s (preset %s, %d parameters; semantic head %s)",
        args.out,
        result.preset,
        sum(p.numel() for p in result.generator.parameters()),
        result.provenance["semantic_head"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
