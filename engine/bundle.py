"""Model bundles: weights as safetensors plus a JSON manifest. Never pickle.

A bundle is a directory::

    manifest.json            format version, kind, preset, config, components, style bank,
                             provenance, and per file: byte size + sha256
    <component>.safetensors  one file per component (e.g. "generator")
    styles.safetensors       the style bank's tensors (only when the bank is not empty)

The style bank holds named edits (directions in S, W or tri-plane space, masks) that back
user-facing styles; "style" here is what a user picks, not the generator's S space.

Loading checks, in order: the manifest parses, has a known format version and exactly the
fields this version writes, each of its type (no defaults, no unknown keys, no bool for an
int); every listed file exists, has the recorded size (else "truncated") and sha256; each file
parses as safetensors; its keys, shapes and dtypes equal the manifest's listing; and, when the
caller passes the shapes its model expects, those too. Any failure raises :class:`BundleError`
naming the file, the manifest field (``BundleError.field``) and the key. ``config`` and
``provenance`` are free-form here: a kind's loader parses its config (e.g.
:func:`engine.triplane.core.load_core`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
STYLES = "styles"
_SUPPORTED_VERSIONS = (1,)
MAX_MANIFEST_BYTES = 32 << 20
"""A manifest lists tensors, not data; anything this large is not one of ours."""
MAX_DERIVED_BYTES = 1 << 30
"""Most memory a config may ask for in buffers that no weight file backs (see :func:`state_shapes`)."""

TensorDict = dict[str, torch.Tensor]
T = TypeVar("T")


class BundleError(Exception):
    """A bundle is missing, malformed, corrupted or does not fit the model.

    ``field`` is the dotted manifest path at fault where there is one (``format_version``,
    ``components.encoder.bytes``, ``config.generator.synthesis.plane_channels``; tuple items as
    ``low_channels[1]``) and ``path`` the bundle file or directory concerned; the message names
    both. Both are None for errors that are not about one field (e.g. a missing directory).
    """

    def __init__(
        self, message: str, *, field: str | None = None, path: str | os.PathLike[str] | None = None
    ) -> None:
        if field is not None and repr(field) not in message:  # so a log line alone says which field
            message = f"{message} (manifest field {field!r})"
        super().__init__(message)
        self.field = field
        self.path = None if path is None else str(path)


def field_error(path: str | os.PathLike[str], field: str, problem: str) -> BundleError:
    """``BundleError`` for one manifest field: ``"<path>: field '<field>' <problem>"``."""
    return BundleError(f"{path}: field {field!r} {problem}", field=field, path=path)


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


def _name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a bundle file (it becomes ``<name>.safetensors`` in the directory)."""
    if not name or "/" in name or "\\" in name or "\x00" in name or name.startswith("."):
        return "must be a plain, non-empty file name inside the bundle"
    if name == "manifest":
        return "is reserved for the manifest"
    return None


def _write_component(directory: Path, name: str, tensors: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    if _name_problem(name):
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


# The manifest's schema: every object has exactly these keys (what save_bundle writes).
_Schema = Mapping[str, type | tuple[type, ...]]
_ROOT: _Schema = {
    "format_version": int, "kind": str, "preset": str, "config": dict, "components": dict, "style_bank": dict,
    "provenance": dict,
}
_FILE: _Schema = {"file": str, "bytes": int, "sha256": str, "tensors": dict}
_TENSOR: _Schema = {"shape": list, "dtype": str}
_BANK: _Schema = {"file": (dict, type(None)), "entries": dict}
_ENTRY: _Schema = {"kind": str, "space": str, "description": str, "metadata": dict}
_SHA256 = re.compile(r"[0-9a-f]{64}")
_JSON_TYPES = {dict: "object", list: "list", str: "string", int: "integer", float: "number",
               bool: "boolean", type(None): "null"}


def _type_name(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _is(value: Any, typ: type | tuple[type, ...]) -> bool:
    types = typ if isinstance(typ, tuple) else (typ,)
    if isinstance(value, bool):  # JSON true/false: Python counts a bool as an int, we never do
        return bool in types
    return isinstance(value, types)


def _require(d: Mapping[str, Any], key: str, typ: type | tuple[type, ...], where: str, *,
             prefix: str = "") -> Any:
    """``d[key]``, which must exist and be a ``typ`` (bool is not an int); ``prefix.key`` names it."""
    name = f"{prefix}.{key}" if prefix else key
    if key not in d:
        raise BundleError(f"{where}: missing field {name!r}", field=name, path=where)
    if not _is(d[key], typ):
        want = " or ".join(_JSON_TYPES.get(t, t.__name__) for t in (typ if isinstance(typ, tuple) else (typ,)))
        raise field_error(where, name, f"has the wrong type ({_type_name(d[key])}; expected {want})")
    return d[key]


def _object(value: Any, schema: _Schema, where: str, prefix: str) -> dict[str, Any]:
    """``value`` must be an object with exactly ``schema``'s keys, each of its type."""
    if not isinstance(value, dict):
        raise field_error(where, prefix, f"must be an object, got {_type_name(value)}")
    unknown = sorted(set(value) - set(schema))
    if unknown:
        raise field_error(where, f"{prefix}.{unknown[0]}", f"is unknown (this build reads {sorted(schema)} there)")
    for key, typ in schema.items():
        _require(value, key, typ, where, prefix=prefix)
    return value


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of repeated keys; json.dumps never writes them.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse and structurally validate ``manifest.json`` (no weights are read).

    Raises:
        BundleError: with ``field`` set to the manifest field at fault, where there is one.
    """
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise BundleError(f"{path}: no manifest (is this a bundle directory?)", path=path)
    try:
        size = path.stat().st_size
        text = path.read_bytes() if size <= MAX_MANIFEST_BYTES else b""
    except OSError as e:
        raise BundleError(f"{path}: manifest cannot be read: {e}", path=path) from e
    if size > MAX_MANIFEST_BYTES:
        raise BundleError(f"{path}: manifest is {size} bytes, more than any bundle needs", path=path)
    try:
        # ValueError also covers duplicate keys and integers too long to parse; RecursionError, deep nesting.
        manifest = json.loads(text.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise BundleError(f"{path}: manifest is not valid JSON: {e}", path=path) from e
    if not isinstance(manifest, dict):
        raise BundleError(f"{path}: manifest must be a JSON object, got {_type_name(manifest)}", path=path)
    where = str(path)
    version = _require(manifest, "format_version", int, where)
    if version not in _SUPPORTED_VERSIONS:
        raise BundleError(
            f"{path}: unknown bundle format version {version} (this build reads {list(_SUPPORTED_VERSIONS)})",
            field="format_version", path=path,
        )
    unknown = sorted(set(manifest) - set(_ROOT))
    if unknown:
        raise field_error(where, unknown[0], f"is unknown (format version {version} has {sorted(_ROOT)})")
    for key, typ in _ROOT.items():
        _require(manifest, key, typ, where)
    for name, info in manifest["components"].items():
        problem = _name_problem(name) or ("is reserved for the style bank" if name == STYLES else None)
        if problem:
            raise field_error(where, f"components.{name}", f"is not a valid component name: it {problem}")
        _check_file_entry(info, name, where, f"components.{name}")
    bank = _object(manifest["style_bank"], _BANK, where, "style_bank")
    listed: dict[str, Any] = {}
    if bank["file"] is not None:
        listed = _check_file_entry(bank["file"], STYLES, where, "style_bank.file")["tensors"]
    for name, entry in bank["entries"].items():
        _object(entry, _ENTRY, where, f"style_bank.entries.{name}")
    if set(listed) != set(bank["entries"]):
        raise field_error(
            where, "style_bank.entries",
            f"{sorted(bank['entries'])} do not match the style bank's tensors {sorted(listed)}",
        )
    return manifest


def _check_file_entry(info: Any, name: str, where: str, prefix: str) -> dict[str, Any]:
    _object(info, _FILE, where, prefix)
    if info["file"] != f"{name}.safetensors":
        raise field_error(where, f"{prefix}.file", f"is {info['file']!r}; bundles name it {name + '.safetensors'!r}")
    if info["bytes"] < 0:
        raise field_error(where, f"{prefix}.bytes", f"is negative ({info['bytes']})")
    if not _SHA256.fullmatch(info["sha256"]):
        raise field_error(where, f"{prefix}.sha256", "is not a sha256 digest (64 lowercase hex digits)")
    for key, spec in info["tensors"].items():
        _object(spec, _TENSOR, where, f"{prefix}.tensors.{key}")
        if not all(_is(n, int) and n >= 0 for n in spec["shape"]):
            raise field_error(where, f"{prefix}.tensors.{key}.shape", f"must list non-negative integers, got {spec['shape']}")
    return info


def _read_component(directory: Path, info: Mapping[str, Any], where: str, prefix: str) -> TensorDict:
    """The tensors of a file entry that :func:`read_manifest` has validated."""
    path = directory / info["file"]
    try:
        if not path.is_file():  # inside the try: a name too long for the file system raises
            raise BundleError(f"{where}: file {info['file']} is missing", field=f"{prefix}.file", path=path)
        size = path.stat().st_size
        if size != info["bytes"]:
            state = "truncated" if size < info["bytes"] else "larger than recorded"
            raise BundleError(
                f"{where}: file {info['file']} is {state} ({size} bytes, manifest says {info['bytes']})",
                field=f"{prefix}.bytes", path=path,
            )
        digest = sha256_file(path)
    except OSError as e:
        raise BundleError(f"{where}: file {info['file']} cannot be read: {e}", field=f"{prefix}.file", path=path) from e
    if digest != info["sha256"]:
        raise BundleError(
            f"{where}: file {info['file']} fails its sha256 check (got {digest[:12]}..., "
            f"manifest says {info['sha256'][:12]}...): the file is corrupted or was replaced",
            field=f"{prefix}.sha256", path=path,
        )
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise BundleError(
            f"{where}: file {info['file']} is not a readable safetensors file: {e}", field=f"{prefix}.file", path=path
        ) from e
    listed = info["tensors"]
    missing = sorted(set(listed) - set(tensors))
    unexpected = sorted(set(tensors) - set(listed))
    if missing or unexpected:
        raise BundleError(
            f"{where}: file {info['file']} keys differ from the manifest: missing {missing}, unexpected {unexpected}",
            field=f"{prefix}.tensors", path=path,
        )
    for key, spec in listed.items():
        t = tensors[key]
        if list(t.shape) != spec["shape"] or _dtype_name(t) != spec["dtype"]:
            raise BundleError(
                f"{where}: tensor {key!r} is {_dtype_name(t)}{list(t.shape)} but the manifest says "
                f"{spec['dtype']}{spec['shape']}",
                field=f"{prefix}.tensors.{key}", path=path,
            )
    return tensors


def check_shapes(
    tensors: Mapping[str, torch.Tensor],
    expected: Mapping[str, tuple[int, ...]],
    *,
    where: str,
    field: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> None:
    """Raise :class:`BundleError` unless ``tensors`` has exactly the ``expected`` keys and shapes.

    ``field`` (e.g. ``components.decoder``) and ``path`` go on the error; keys are named under
    ``<field>.tensors``.
    """
    listing = f"{field}.tensors" if field else None
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing:
        raise BundleError(
            f"{where}: missing keys {missing[:10]}{' ...' if len(missing) > 10 else ''}", field=listing, path=path
        )
    if unexpected:
        raise BundleError(
            f"{where}: unexpected keys {unexpected[:10]}{' ...' if len(unexpected) > 10 else ''}",
            field=listing, path=path,
        )
    for key, shape in expected.items():
        if tuple(tensors[key].shape) != tuple(shape):
            raise BundleError(
                f"{where}: wrong shape for {key!r}: bundle has {tuple(tensors[key].shape)}, model expects {tuple(shape)}",
                field=f"{listing}.{key}" if listing else None, path=path,
            )


def build_on_meta(build: Callable[[], T], *, path: str | os.PathLike[str], field: str = "config") -> T:
    """Run ``build`` (a model constructor fed a parsed config) with tensors on the meta device.

    Shapes only, nothing allocated: a corrupt config that asks for a terabyte of weights fails
    the shape check against the bundle's files instead of exhausting memory. A config the model
    refuses is a :class:`BundleError` on ``field``.
    """
    try:
        with torch.device("meta"):
            return build()
    except (ValueError, RuntimeError, ArithmeticError) as e:  # ArithmeticError: e.g. a 1/sqrt(0) gain
        raise field_error(path, field, f"describes a model that cannot be built: {e}") from e


def state_shapes(
    modules: Mapping[str, nn.Module], *, path: str | os.PathLike[str], field: str = "config"
) -> dict[str, dict[str, tuple[int, ...]]]:
    """Each component's state-dict shapes (``expected`` for :func:`load_bundle`) from modules built by
    :func:`build_on_meta`.

    Buffers outside the state dict (lookup grids and the like) are sized by the config alone and
    checked against no file, so their total is capped at :data:`MAX_DERIVED_BYTES`.
    """
    shapes: dict[str, dict[str, tuple[int, ...]]] = {}
    derived = 0
    for name, m in modules.items():
        state = m.state_dict()
        shapes[name] = {k: tuple(v.shape) for k, v in state.items()}
        derived += sum(math.prod(b.shape) * b.element_size() for k, b in m.named_buffers() if k not in state)
    if derived > MAX_DERIVED_BYTES:
        raise field_error(
            path, field, f"describes a model whose derived buffers need {derived / 2**30:.1f} GiB "
            f"(at most {MAX_DERIVED_BYTES / 2**30:.0f} GiB)",
        )
    return shapes


def load_state(module: nn.Module, tensors: Mapping[str, torch.Tensor], *, field: str,
               path: str | os.PathLike[str]) -> None:
    """``module.load_state_dict(tensors, strict=True)``, its refusals (e.g. a dtype that does not
    convert) as :class:`BundleError` on ``field``."""
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise field_error(path, field, f"does not load into the model: {e}") from e


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
        BundleError: with a message naming the file/key and the problem; ``field`` and ``path``
            say which manifest field and file.
    """
    root = Path(directory)
    manifest = read_manifest(root)
    manifest_path = root / MANIFEST
    if kind is not None and manifest["kind"] != kind:
        raise BundleError(
            f"{root}: bundle kind is {manifest['kind']!r}, expected {kind!r}", field="kind", path=manifest_path
        )
    components = {
        name: _read_component(root, info, f"{root}: component {name!r}", f"components.{name}")
        for name, info in manifest["components"].items()
    }
    if expected is not None:
        absent = sorted(set(expected) - set(components))
        if absent:
            raise BundleError(f"{root}: missing components {absent}", field="components", path=manifest_path)
        for name, shapes in expected.items():
            check_shapes(components[name], shapes, where=f"{root}: component {name!r}",
                         field=f"components.{name}", path=root / manifest["components"][name]["file"])
    bank = manifest["style_bank"]
    styles: dict[str, torch.Tensor] = {}
    if bank["file"] is not None:
        styles = _read_component(root, bank["file"], f"{root}: style bank", "style_bank.file")
    entries = {
        name: StyleEntry(name=name, kind=e["kind"], space=e["space"], description=e["description"],
                         metadata=dict(e["metadata"]))
        for name, e in bank["entries"].items()
    }
    return Bundle(path=root, manifest=manifest, components=components, styles=styles, style_entries=entries)
