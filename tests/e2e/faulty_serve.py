"""``tricam serve`` with one extra style, ``broken``, that raises on every frame.

``python -m tests.e2e.faulty_serve [tricam serve options]``: the real server and engine (the
registry's ``build_engine`` is wrapped to register the style), so the browser test sees how
the page shows a failing style.
"""

from __future__ import annotations

import sys
from typing import Any

from engine import registry
from engine.api import Engine, RGBImage, Style, StyleContext, StyleInfo


class Broken(Style):
    info = StyleInfo(name="broken", description="Raises on every frame (a test of the failure path).")

    def apply(self, frame: RGBImage, ctx: StyleContext) -> RGBImage:
        raise RuntimeError("this style's model could not run")


def main() -> int:
    real = registry.build_engine

    def build(*args: Any, **kwargs: Any) -> Engine:
        engine = real(*args, **kwargs)
        engine.registry.register(Broken())
        return engine

    registry.build_engine = build  # type: ignore[assignment]
    from streamer.cli import main as cli_main

    return cli_main(["serve", *sys.argv[1:]])


if __name__ == "__main__":
    raise SystemExit(main())
