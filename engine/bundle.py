"""Model bundles: weights as safetensors plus a JSON manifest. Never pickle.

A bundle is a directory::

    manifest.json            format version, kind, preset, config, components, style bank,
                             provenance, and per file: byte size + sha256
    <component>.safetensors  one file per component (e.g. "generator")
    styles.safetensors       the style bank's tensors (only when the bank is not empty)

The style bank holds named edits (directions in S, W or tri-plane space, masks) that back
user-facing styles; "style" here is what a user picks, not the generator's S space.

Loading checks, in order: the manifest parses and has a known format version; every
listed file exists, has the recorded size (else "truncated") and sha256; each file parses
as safetensors; its keys, shapes and dtypes equal the manifest's listing; and, when the
caller passes the shapes its model expects, those too. Any failure raises
:class:`BundleError` naming the file and key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
STYLES = "styles"
_SUPPORTED_VERSIONS = (1,)

TensorDict = dict[str, torch.Tensor]


class BundleError(Exception):
    """A bundle is missing, malformed, corrupted or does not fit the model."""


@dataclass(frozen=True)
class StyleEntry:
    """One named edit in the style bank: a direction in S, W or tri-plane space, a full S vector or a
    mask, backing a user-facing style."""

    name: str
    kind: str
    """e.g. 'direction' (added to s), 'style' (a full s), 'mask' (SAT3D channel mask)."""
    space: str
    """Which space the tensor lives in, e.g. 's', 'w', 'triplane'."""
    description: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Bundle:
    """What :func:`load_bundle` returns."""

    path: Path
    manifest: dict[str, Any]
    components: dict[str, TensorDict]
    styles: dict[str, torch.Tensor]
    style_entries: dict[str, StyleEntry]

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])

    @property
    def preset(self) -> str:
        return str(self.manifest["preset"])

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.manifest["config"])

    @property
    def provenance(self) -> dict[str, Any]:
        return dict(self.manifest["provenance"])


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _dtype_name(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def _listing(tensors: Mapping[str, torch.Tensor]) -> dict[str, dict[str, Any]]:
    return {k: {"shape": list(v.shape), "dtype": _dtype_name(v)} for k, v in sorted(tensors.items())}


def _write_component(directory: Path, name: str, tensors: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    if not name or "/" in name or name.startswith(".") or name == "manifest":
        raise BundleError(f"invalid component name {name!r}")
    filename = f"{name}.safetensors"
    path = directory / filename
    # safetensors needs contiguous, non-shared storage; clone detaches views of other tensors.
    save_file({k: v.detach().contiguous().clone() for k, v in tensors.items()}, str(path))
    return {
        "file": filename,
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "tensors": _listing(tensors),
    }


def save_bundle(
    directory: str | os.PathLike[str],
    *,
    kind: str,
    preset: str,
    config: Mapping[str, Any],
    components: Mapping[str, Mapping[str, torch.Tensor]],
    styles: Mapping[str, torch.Tensor] | None = None,
    style_entries: Mapping[str, StyleEntry] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write a bundle and return its manifest.

    Args:
        directory: created if missing; existing bundle files in it are overwritten.
        kind: what the bundle holds, e.g. ``triplane-generator``.
        preset: the preset name the config came from (informational).
        config: JSON-ready model config.
        components: component name -> state dict.
        styles: style bank tensors by name (named edits backing user-facing styles; may be
            empty); each needs a ``style_entries`` entry.
        provenance: how the weights were made (trainer, data, steps, seed, date ...).
    """
    styles = dict(styles or {})
    entries = dict(style_entries or {})
    if set(styles) != set(entries):
        raise BundleError(
            f"style tensors and entries differ: tensors only {sorted(set(styles) - set(entries))}, "
            f"entries only {sorted(set(entries) - set(styles))}"
        )
    if STYLES in components:
        raise BundleError(f"component name {STYLES!r} is reserved for the style bank")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    files = {name: _write_component(out, name, tensors) for name, tensors in components.items()}
    style_file = _write_component(out, STYLES, styles) if styles else None
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "preset": preset,
        "config": dict(config),
        "components": files,
        "style_bank": {
            "file": style_file,
            "entries": {
                n: {"kind": e.kind, "space": e.space, "description": e.description, "metadata": e.metadata}
                for n, e in sorted(entries.items())
            },
        },
        "provenance": dict(provenance or {}),
    }
    text = json.dumps(manifest, indent=2, sort_keys=True)
    (out / MANIFEST).write_text(text + "\n", encoding="utf-8")
    log.info("wrote bundle %s (%s, %d components, %d styles)", out, kind, len(files), len(styles))
    return manifest


def _require(d: Mapping[str, Any], key: str, typ: type | tuple[type, ...], where: str) -> Any:
    if key not in d:
        raise BundleError(f"{where}: missing field {key!r}")
    if not isinstance(d[key], typ):
        raise BundleError(f"{where}: field {key!r} has the wrong type ({type(d[key]).__name__})")
    return d[key]


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse and structurally validate ``manifest.json`` (no weights are read)."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise BundleError(f"{path}: no manifest (is this a bundle directory?)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{path}: manifest is not valid JSON: {e}") from e
    if not isinstance(manifest, dict):
        raise BundleError(f"{path}: manifest must be a JSON object")
    version = _require(manifest, "format_version", int, str(path))
    if version not in _SUPPORTED_VERSIONS:
        raise BundleError(
            f"{path}: unknown bundle format version {version} (this build reads {list(_SUPPORTED_VERSIONS)})"
        )
    for key, typ in (
        ("kind", str),
        ("preset", str),
        ("config", dict),
        ("components", dict),
        ("provenance", dict),
    ):
        _require(manifest, key, typ, str(path))
    bank = _require(manifest, "style_bank", dict, str(path))
    _require(bank, "entries", dict, f"{path}: style_bank")
    for name, info in manifest["components"].items():
        _check_file_entry(info, f"{path}: component {name!r}")
    if bank.get("file") is not None:
        _check_file_entry(bank["file"], f"{path}: style bank")
    return manifest


def _check_file_entry(info: Any, where: str) -> None:
    if not isinstance(info, dict):
        raise BundleError(f"{where}: entry must be an object")
    _require(info, "file", str, where)
    _require(info, "bytes", int, where)
    _require(info, "sha256", str, where)
    _require(info, "tensors", dict, where)
    name = info["file"]
    if "/" in name or "\\" in name or name.startswith("."):
        raise BundleError(f"{where}: file name {name!r} must be a plain name inside the bundle")


def _read_component(directory: Path, info: Mapping[str, Any], where: str) -> TensorDict:
    path = directory / info["file"]
    if not path.is_file():
        raise BundleError(f"{where}: file {info['file']} is missing")
    size = path.stat().st_size
    if size != info["bytes"]:
        state = "truncated" if size < info["bytes"] else "larger than recorded"
        raise BundleError(
            f"{where}: file {info['file']} is {state} ({size} bytes, manifest says {info['bytes']})"
        )
    digest = sha256_file(path)
    if digest != info["sha256"]:
        raise BundleError(
            f"{where}: file {info['file']} fails its sha256 check (got {digest[:12]}..., "
            f"manifest says {info['sha256'][:12]}...): the file is corrupted or was replaced"
        )
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise BundleError(f"{where}: file {info['file']} is not a readable safetensors file: {e}") from e
    listed = info["tensors"]
    missing = sorted(set(listed) - set(tensors))
    unexpected = sorted(set(tensors) - set(listed))
    if missing or unexpected:
        raise BundleError(
            f"{where}: file {info['file']} keys differ from the manifest: missing {missing}, unexpected {unexpected}"
        )
    for key, spec in listed.items():
        t = tensors[key]
        if list(t.shape) != list(spec.get("shape", [])) or _dtype_name(t) != spec.get("dtype"):
            raise BundleError(
                f"{where}: tensor {key!r} is {_dtype_name(t)}{list(t.shape)} but the manifest says "
                f"{spec.get('dtype')}{spec.get('shape')}"
            )
    return tensors


def check_shapes(
    tensors: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]], *, where: str
) -> None:
    """Raise :class:`BundleError` unless ``tensors`` has exactly the ``expected`` keys and shapes."""
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing:
        raise BundleError(f"{where}: missing keys {missing[:10]}{' ...' if len(missing) > 10 else ''}")
    if unexpected:
        raise BundleError(
            f"{where}: unexpected keys {unexpected[:10]}{' ...' if len(unexpected) > 10 else ''}"
        )
    for key, shape in expected.items():
        if tuple(tensors[key].shape) != tuple(shape):
            raise BundleError(
                f"{where}: wrong shape for {key!r}: bundle has {tuple(tensors[key].shape)}, model expects {tuple(shape)}"
            )


def load_bundle(
    directory: str | os.PathLike[str],
    *,
    kind: str | None = None,
    expected: Mapping[str, Mapping[str, tuple[int, ...]]] | None = None,
) -> Bundle:
    """Read and validate a bundle.

    Args:
        kind: if given, the manifest's kind must match.
        expected: component name -> key -> shape the caller's model needs; checked exactly.
    Raises:
        BundleError: with a message naming the file/key and the problem.
    """
    root = Path(directory)
    manifest = read_manifest(root)
    if kind is not None and manifest["kind"] != kind:
        raise BundleError(f"{root}: bundle kind is {manifest['kind']!r}, expected {kind!r}")
    components = {
        name: _read_component(root, info, f"{root}: component {name!r}")
        for name, info in manifest["components"].items()
    }
    if expected is not None:
        absent = sorted(set(expected) - set(components))
        if absent:
            raise BundleError(f"{root}: missing components {absent}")
        for name, shapes in expected.items():
            check_shapes(components[name], shapes, where=f"{root}: component {name!r}")
    bank = manifest["style_bank"]
    styles: dict[str, torch.Tensor] = {}
    if bank.get("file") is not None:
        styles = _read_component(root, bank["file"], f"{root}: style bank")
    entries = {}
    for name, e in bank["entries"].items():
        if not isinstance(e, dict):
            raise BundleError(f"{root}: style entry {name!r} must be an object")
        entries[name] = StyleEntry(
            name=name,
            kind=str(_require(e, "kind", str, f"style {name!r}")),
            space=str(_require(e, "space", str, f"style {name!r}")),
            description=str(e.get("description", "")),
            metadata=dict(e.get("metadata", {})),
        )
    if set(entries) != set(styles):
        raise BundleError(
            f"{root}: style bank entries {sorted(entries)} do not match its tensors {sorted(styles)}"
        )
    return Bundle(path=root, manifest=manifest, components=components, styles=styles, style_entries=entries)
