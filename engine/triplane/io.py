"""Save and load a :class:`TriplaneGenerator` as a bundle (see :mod:`engine.bundle`).

Components: ``mapping``, ``backbone``, ``decoder``, ``superres`` (their state dicts,
persistent buffers such as ``w_avg`` and the constant noise included).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

from engine.bundle import Bundle, BundleError, StyleEntry, load_bundle, read_manifest, save_bundle
from engine.triplane.config import GeneratorConfig, config_from_dict, config_to_dict
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
            or weights that do not fit the model it describes.
    """
    manifest = read_manifest(directory)
    try:
        config = config_from_dict(GeneratorConfig, manifest["config"])
    except (ValueError, TypeError) as e:
        raise BundleError(f"{directory}: bad generator config: {e}") from e
    generator = TriplaneGenerator(config)
    modules = _components(generator)
    expected = {name: {k: tuple(v.shape) for k, v in m.state_dict().items()} for name, m in modules.items()}
    bundle = load_bundle(directory, kind=KIND, expected=expected)
    for name, m in modules.items():
        m.load_state_dict(bundle.components[name], strict=True)
    return generator.eval(), bundle
