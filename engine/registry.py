"""Builds the engine the server runs: built-in styles, face tracking, and styles from a bundle."""

from __future__ import annotations

import logging
from pathlib import Path

from engine.api import Engine, EngineError, StyleRegistry
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
    check_device(device)
    registry = StyleRegistry([PassThrough(), Bronze(), PoseOverlay()])
    # One FaceTracker (one mediapipe graph) per session, built on its first face-aware frame.
    engine = Engine(registry, tracker_factory=tracker_factory)
    if bundle is not None:
        from engine.bundle import load_bundle

        b = load_bundle(bundle)  # BundleError names the problem; the entry point reports it
        # Neural editing styles (distilled tri-plane editors, SAT3D directions) are registered
        # from a bundle once their runtimes land; until then a bundle is validated, not run.
        log.warning(
            "bundle %s (%s, preset %s, %d style-bank entries) is valid, but this version runs no "
            "styles from bundles yet; serving the built-in styles",
            bundle, b.kind, b.preset, len(b.style_entries),
        )
    return engine


def check_device(device: str) -> None:
    """Refuse a device this machine cannot run, with a message a person can act on."""
    if device == "cpu":
        return
    if not device.startswith("cuda"):
        raise EngineError(f"unknown device {device!r}: use cpu or cuda[:N]")
    import torch

    if not torch.cuda.is_available():
        raise EngineError(f"device {device!r} asked for, but this torch build sees no CUDA GPU; use --device cpu")
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise EngineError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) present")
