"""``tricam`` command line: one entry point, subcommands imported only when chosen.

Each subcommand module exposes ``DESCRIPTION``, ``add_arguments(parser)`` and
``run(args) -> int``; heavy imports (torch, mediapipe) belong inside ``run`` so that
``tricam --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("streamer.server", "run the live server (browser over WebRTC, optional virtual camera)"),
    "cam": ("streamer.cam", "local webcam or video file -> engine -> virtual camera, no browser"),
    "style": ("streamer.style_cli", "switch a running server's style (for a hotkey): tricam style bronze"),
    "inspect": ("engine.faces.cli", "find faces in an image: pose, EG3D camera, aligned crop"),
    "synth": ("engine.synth.cli", "render a synthetic-head dataset with exact labels"),
    "train": ("engine.training.cli", "train the 3D core (encoder, generator) on synthetic heads; pack a bundle"),
    "eval": ("engine.evaluation.cli", "measure the 3D core against exact synthetic ground truth"),
}


def _usage() -> str:
    lines = ["usage: tricam COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<9} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    lines += ["", "tricam COMMAND --help shows a command's options."]
    return "\n".join(lines)


def setup_logging(verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else getattr(logging, os.environ.get("TRICAM_LOG", "INFO").upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(_usage() + "\n")
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        sys.stderr.write(f"tricam: unknown command {name!r}\n\n{_usage()}\n")
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"tricam {name}", description=getattr(module, "DESCRIPTION", None))
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    module.add_arguments(parser)
    ns = parser.parse_args(rest)
    setup_logging(ns.verbose)
    try:
        return int(module.run(ns))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
