"""Builds the engine the server runs: built-in styles, face tracking, and styles from a bundle."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from engine.api import Engine, EngineError, StyleRegistry
from engine.faces.tracker import tracker_factory
from engine.styles.basic import Bronze, PassThrough
from engine.styles.pose import PoseOverlay

log = logging.getLogger(__name__)


def build_engine(bundle: Path | None = None, device: str = "cpu", *, load_core_model: bool = True) -> Engine:
    """The default engine: ``none``, ``bronze`` and ``pose`` always, plus the trained 3D core.

    Args:
        bundle: a model bundle directory; default: the ``tricam-core`` bundle shipped in the
            repository (:data:`engine.triplane.core.DEFAULT_BUNDLE`). A ``tricam-core`` bundle is
            loaded as the engine's 3D core; other kinds are validated.
        device: ``cpu`` or ``cuda[:N]`` for neural styles.
        load_core_model: False skips the core (tests of the transport that need no model).
    Raises:
        BundleError: a bundle that is missing, corrupt or does not fit, named precisely.
    """
    check_device(device)
    registry = StyleRegistry([PassThrough(), Bronze(), PoseOverlay()])
    # One FaceTracker (one mediapipe graph) per session, built on its first face-aware frame.
    engine = Engine(registry, tracker_factory=tracker_factory)
    if not load_core_model:
        return engine
    from engine.bundle import read_manifest
    from engine.triplane.core import DEFAULT_BUNDLE, KIND, load_core

    path = bundle if bundle is not None else DEFAULT_BUNDLE
    if bundle is None and not (path / "manifest.json").is_file():
        log.warning("the default 3D core bundle is missing (%s); serving the built-in styles only", path)
        return engine
    manifest = read_manifest(path)  # BundleError names the problem; the entry point reports it
    if manifest["kind"] == KIND:
        engine.core = load_core(path, device=device)
        log.info("3D core %s loaded (preset %s; held-out PSNR %.1f dB at the input view, %.1f dB at +-30 deg)",
                 path, manifest["preset"], *_figures(manifest["provenance"], "psnr_input", "psnr_side"))
        # Neural editing styles built on the core (the distilled editor, SAT3D directions) register
        # here as they land; the core alone adds no style.
        return engine
    from engine.bundle import load_bundle

    b = load_bundle(path)
    log.warning(
        "bundle %s (%s, preset %s, %d style-bank entries) is valid, but this version runs no "
        "styles from bundles of that kind yet; serving the built-in styles",
        path, b.kind, b.preset, len(b.style_entries),
    )
    return engine


def _figures(provenance: dict[str, Any], *keys: str) -> list[float]:
    """Numbers from the free-form ``provenance.evaluation``; NaN where absent or not a number."""
    ev = provenance.get("evaluation")
    ev = ev if isinstance(ev, dict) else {}
    return [_number(ev.get(k)) for k in keys]


def _number(v: Any) -> float:
    if isinstance(v, float):
        return v
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) < 1e300:  # float() overflows past ~1e308
        return float(v)
    return math.nan


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
