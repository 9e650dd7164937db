"""``python -m streamer`` is ``tricam serve``."""

import sys

from streamer.cli import main

raise SystemExit(main(["serve", *sys.argv[1:]]))
