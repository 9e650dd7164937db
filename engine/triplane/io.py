"""Save and load a :class:`TriplaneGenerator` as a bundle (see :mod:`engine.bundle`).

Components: ``mapping``, ``backbone``, ``decoder``, ``superres`` (their state dicts,
persistent buffers such as ``w_avg`` and the constant noise included).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from engine.bundle import (
    MANIFEST,
    Bundle,
    BundleError,
    StyleEntry,
    build_on_meta,
    load_bundle,
    load_state,
    read_manifest,
    save_bundle,
    state_shapes,
)
from engine.triplane.config import ConfigError, GeneratorConfig, config_from_dict, config_to_dict
from engine.triplane.generator import TriplaneGenerator

KIND = "triplane-generator"
COMPONENTS = ("mapping", "backbone", "decoder", "superres")


def _components(generator: TriplaneGenerator) -> dict[str, torch.nn.Module]:
    return {name: getattr(generator, name) for name in COMPONENTS}


def save_generator(
    directory: str | os.PathLike[str],
    generator: TriplaneGenerator,
    *,
    preset: str,
    provenance: Mapping[str, Any] | None = None,
    styles: Mapping[str, torch.Tensor] | None = None,
    style_entries: Mapping[str, StyleEntry] | None = None,
) -> dict[str, Any]:
    """Write ``generator`` as a bundle; returns the manifest.

    ``styles``/``style_entries`` are the bundle's style bank: named edits (directions in S, W or
    tri-plane space, masks) that back user-facing styles (see :func:`engine.bundle.save_bundle`).
    """
    return save_bundle(
        directory,
        kind=KIND,
        preset=preset,
        config=config_to_dict(generator.config),
        components={name: m.state_dict() for name, m in _components(generator).items()},
        styles=styles,
        style_entries=style_entries,
        provenance=provenance,
    )


def load_generator(directory: str | os.PathLike[str]) -> tuple[TriplaneGenerator, Bundle]:
    """Build the generator a bundle describes and load its weights (validated, strict).

    Raises:
        BundleError: anything wrong with the bundle, including a config that does not parse
            (``field`` names it, e.g. ``config.synthesis.plane_channels``) or weights that do
            not fit the model it describes.
    """
    root = Path(directory)
    manifest = read_manifest(root)
    path = root / MANIFEST
    if manifest["kind"] != KIND:  # before the config: another kind's config would read as garbage
        raise BundleError(f"{root}: bundle kind is {manifest['kind']!r}, expected {KIND!r}", field="kind", path=path)
    try:
        config = config_from_dict(GeneratorConfig, manifest["config"], strict=True)
    except ConfigError as e:
        field = e.within("config").field or "config"
        raise BundleError(f"{root}: bad generator config: field {field!r} {e.problem}", field=field, path=path) from e
    # Shapes from a meta-device model: a corrupt config is refused before it can allocate anything.
    meta = build_on_meta(lambda: _components(TriplaneGenerator(config)), path=path)
    bundle = load_bundle(root, kind=KIND, expected=state_shapes(meta, path=path))
    generator = TriplaneGenerator(config)
    for name, m in _components(generator).items():
        load_state(m, bundle.components[name], field=f"components.{name}", path=root / f"{name}.safetensors")
    return generator.eval(), bundle
