"""Fuzz the bundle loaders: a mutated manifest or a corrupted file must load or raise BundleError.

    .venv/bin/python scripts/fuzz_bundles.py --seconds 60 [--seed 0] [--targets core,generator,bundle] [--json]

Each input starts from a valid bundle and gets one to three random edits: manifest edits
(delete a key, set a random JSON value at a random path, add an unknown key, swap a value's
type, grow or shrink a list) or file edits (truncate, flip bytes, append, overwrite, delete),
half of the file edits with the manifest's size and sha256 updated to match so the safetensors
parser and the listing checks are reached; one input in twenty also has the manifest's own
bytes edited (the JSON parser's turn). Targets: ``core`` (the shipped ``core-tiny`` through
``load_core``), ``generator`` (a micro generator through ``load_generator``) and ``bundle`` (a
small generic bundle with a style bank through ``load_bundle``).

Prints counts; ``other`` (any exception but BundleError) must be 0. The exit status is 1 when
it is not. ``tests/engine/test_bundle_malformed.py`` drives the same edits from hypothesis.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JsonPath = tuple[str | int, ...]
MANIFEST = "manifest.json"
MANIFEST_EDITS = ("delete", "set", "add_key", "retype", "resize")
FILE_EDITS = ("truncate", "flip", "append", "overwrite", "header", "delete")


# -- manifest edits -----------------------------------------------------------------------------


def json_paths(doc: Any, prefix: JsonPath = ()) -> Iterator[JsonPath]:
    """Every path below ``doc`` (dict keys and list indices), depth first."""
    items: list[tuple[str | int, Any]] = (
        list(doc.items()) if isinstance(doc, dict) else list(enumerate(doc)) if isinstance(doc, list) else []
    )
    for key, value in items:
        yield (*prefix, key)
        yield from json_paths(value, (*prefix, key))


def _parent(doc: Any, path: JsonPath) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


def get(doc: Any, path: JsonPath) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def delete(doc: Any, path: JsonPath) -> None:
    del _parent(doc, path)[path[-1]]


def set_value(doc: Any, path: JsonPath, value: Any) -> None:
    _parent(doc, path)[path[-1]] = value


def add_key(doc: Any, path: JsonPath, key: str, value: Any) -> None:
    """Add ``key`` to the object at ``path`` (or to the root for ``()``); no-op on a non-object."""
    target = get(doc, path)
    if isinstance(target, dict):
        target[key] = value


def retype(value: Any, choice: int) -> Any:
    """A value of a neighbouring type: the substitutions a hand-edited or foreign manifest makes."""
    options: list[Callable[[], Any]]
    if isinstance(value, bool):
        options = [lambda: int(value), lambda: str(value).lower(), lambda: None, lambda: not value]
    elif isinstance(value, int):
        options = [lambda: float(value) if abs(value) < 1e300 else math.inf, lambda: bool(value % 2),
                   lambda: str(value)[:50], lambda: -value, lambda: 0, lambda: [value], lambda: value + 1, lambda: None]
    elif isinstance(value, float):
        options = [lambda: round(value) if math.isfinite(value) else 0, lambda: math.nan, lambda: math.inf,
                   lambda: -value, lambda: str(value), lambda: 0.0, lambda: None]
    elif isinstance(value, str):
        options = [lambda: len(value), lambda: value + "x", lambda: "", lambda: [value], lambda: None,
                   lambda: value.upper()]
    elif isinstance(value, list):
        options = [lambda: value[:-1], lambda: [*value, value[-1] if value else 0], lambda: {}, lambda: tuple(value),
                   lambda: "[]", lambda: None, lambda: value[::-1]]
    elif isinstance(value, dict):
        options = [lambda: list(value.values()), lambda: list(value), lambda: {}, lambda: None,
                   lambda: json.dumps(value)[:20]]
    else:
        options = [lambda: 0, lambda: "", lambda: {}, lambda: []]
    return options[choice % len(options)]()


def resize(doc: Any, path: JsonPath, delta: int) -> None:
    """Grow (repeating the last item) or shrink the list at ``path``; no-op on a non-list."""
    target = get(doc, path)
    if not isinstance(target, list):
        return
    if delta < 0:
        del target[max(0, len(target) + delta):]
    else:
        target.extend([target[-1] if target else 0] * delta)


def random_json(rng: random.Random, depth: int = 2) -> Any:
    kind = rng.randrange(9 if depth > 0 else 7)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, 1, -1, 2, 3, 4, 64, 65, 2**16, 2**16 + 1, 2**31, -(2**63), 10**30])
    if kind == 3:
        return rng.randint(-(10 ** rng.randrange(1, 8)), 10 ** rng.randrange(1, 8))
    if kind == 4:
        return rng.choice([0.0, -0.0, 0.5, 1.0, -1.0, 1e-300, 1e308, math.nan, math.inf, -math.inf, rng.gauss(0, 100)])
    if kind == 5:
        return rng.choice(["", "x", "float32", "../etc", "a\x00b", "é" * 3, "manifest", "styles", "0" * 64])
    if kind == 6:
        return "".join(rng.choice("abc_./\\0123456789") for _ in range(rng.randrange(0, 12)))
    if kind == 7:
        return [random_json(rng, depth - 1) for _ in range(rng.randrange(0, 4))]
    return {rng.choice(["a", "file", "shape", "kind", "bytes", "x"]): random_json(rng, depth - 1)
            for _ in range(rng.randrange(0, 3))}


def pick_path(rng: random.Random, doc: Any) -> JsonPath:
    """A random path: within ``config`` two times in five (the part a kind's loader parses), else
    within a random top-level section, so the big tensor listings don't crowd out the rest."""
    if not isinstance(doc, dict) or not doc:
        return ()
    sections = [k for k in doc if k != "config"]
    section = "config" if "config" in doc and (rng.random() < 0.4 or not sections) else rng.choice([*sections, None])
    if section is None:
        return rng.choice([(k,) for k in doc])
    return rng.choice([(section,), *((section, *p) for p in json_paths(doc[section]))])


def mutate_manifest(rng: random.Random, doc: Any) -> str:
    """One random edit of ``doc`` in place; returns what it did."""
    path = pick_path(rng, doc)
    value = get(doc, path)
    ops = ["delete", "set", "retype"] if path else []
    ops += ["add_key"] * isinstance(value, dict) + ["resize"] * isinstance(value, list)
    if not ops:
        return "none"
    op = rng.choice(ops)
    if op == "delete":
        delete(doc, path)
    elif op == "set":
        set_value(doc, path, random_json(rng))
    elif op == "add_key":
        add_key(doc, path, "unknown_" + str(rng.randrange(99)), random_json(rng))
    elif op == "retype":
        set_value(doc, path, retype(value, rng.randrange(8)))
    else:
        resize(doc, path, rng.choice([-2, -1, 1, 2]))
    return f"{op} {'.'.join(map(str, path))}"


# -- file edits ---------------------------------------------------------------------------------


def corrupt_bytes(data: bytes, op: str, position: float, payload: bytes) -> bytes | None:
    """``data`` after one edit; ``position`` in [0, 1] places it; None means delete the file."""
    at = min(len(data), int(position * len(data)))
    if op == "truncate":
        return data[:at]
    if op == "flip":
        out = bytearray(data)
        for i, b in enumerate(payload[:8] or b"\x01"):
            if out:
                out[(at + 131 * i) % len(out)] ^= b or 1
        return bytes(out)
    if op == "append":
        return data + payload
    if op == "overwrite":
        return payload
    if op == "header":  # the 8-byte header length and the JSON header that follows
        out = bytearray(data)
        for i, b in enumerate(payload[:8] or b"\xff"):
            if out:
                out[(int(position * 64) + i) % min(len(out), 72)] = b
        return bytes(out)
    if op == "delete":
        return None
    raise ValueError(f"unknown file edit {op!r}")


def resign(manifest: dict[str, Any], name: str, data: bytes) -> None:
    """Record ``data``'s size and sha256 for the file ``name`` so the content checks are reached."""
    import hashlib

    # The manifest may already be edited into any shape: touch only what is still an object.
    components = manifest.get("components")
    entries = [components.get(name.removesuffix(".safetensors"))] if isinstance(components, dict) else []
    bank = manifest.get("style_bank")
    if isinstance(bank, dict) and isinstance(bank.get("file"), dict):
        entries.append(bank["file"])
    for entry in entries:
        if isinstance(entry, dict):
            entry.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())


# -- targets ------------------------------------------------------------------------------------


@dataclass
class Target:
    """A pristine bundle on disk and the loader to throw edits at; :meth:`reset` restores it."""

    name: str
    directory: Path
    load: Callable[[Path], object]
    manifest: dict[str, Any] = field(init=False)
    files: dict[str, bytes] = field(init=False)
    _dirty: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.manifest = json.loads((self.directory / MANIFEST).read_text())
        self.files = {p.name: p.read_bytes() for p in sorted(self.directory.glob("*.safetensors"))}

    def reset(self) -> None:
        for name in self._dirty:
            (self.directory / name).write_bytes(self.files[name])
        self._dirty.clear()
        self.write_manifest(self.manifest)

    def write_manifest(self, manifest: Any) -> None:
        # allow_nan: NaN and Infinity are among the values a corrupt manifest may hold.
        (self.directory / MANIFEST).write_text(json.dumps(manifest, allow_nan=True))

    def corrupt_manifest(self, op: str, position: float, payload: bytes) -> None:
        path = self.directory / MANIFEST
        data = corrupt_bytes(path.read_bytes(), op, position, payload)
        if data is None:
            path.unlink()
        else:
            path.write_bytes(data)

    def write_file(self, name: str, data: bytes | None) -> None:
        self._dirty.add(name)
        path = self.directory / name
        if data is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(data)


def make_targets(workdir: Path, names: list[str]) -> list[Target]:
    import torch

    from engine.bundle import StyleEntry, load_bundle, save_bundle
    from engine.triplane.config import (
        DecoderConfig,
        GeneratorConfig,
        MappingConfig,
        RenderConfig,
        SuperResConfig,
        SynthesisConfig,
    )
    from engine.triplane.core import DEFAULT_BUNDLE, load_core
    from engine.triplane.generator import TriplaneGenerator
    from engine.triplane.io import load_generator, save_generator

    targets = []
    for name in names:
        d = workdir / name
        if name == "core":
            shutil.copytree(DEFAULT_BUNDLE, d)
            targets.append(Target(name, d, load_core))
        elif name == "generator":
            torch.manual_seed(0)
            cfg = GeneratorConfig(
                mapping=MappingConfig(z_dim=8, w_dim=8),
                synthesis=SynthesisConfig(plane_resolution=8, plane_channels=4, channel_base=64, channel_max=8),
                decoder=DecoderConfig(hidden=8, feature_channels=4, semantic_classes=3),
                render=RenderConfig(resolution=8, depth_samples=6, importance_samples=6),
                superres=SuperResConfig(channels=(4, 4), output_resolution=32),
            )
            save_generator(d, TriplaneGenerator(cfg), preset="micro", provenance={"by": "fuzz_bundles"})
            targets.append(Target(name, d, load_generator))
        elif name == "bundle":
            save_small_bundle(d, save_bundle, StyleEntry, torch)
            targets.append(Target(name, d, load_bundle))
        else:
            raise SystemExit(f"unknown target {name!r} (core, generator, bundle)")
    return targets


def save_small_bundle(directory: Path, save_bundle: Any, style_entry: Any, torch: Any) -> None:
    """Two components and a one-entry style bank; a few hundred bytes each."""
    g = torch.Generator().manual_seed(0)
    save_bundle(
        directory,
        kind="fuzz",
        preset="small",
        config={"width": 4, "layers": [1, 2]},
        components={"net": {"w": torch.randn(4, 3, generator=g), "step": torch.tensor([7])},
                    "head": {"fc": torch.randn(2, 2, generator=g).half()}},
        styles={"bronze": torch.linspace(-1, 1, 5)},
        style_entries={"bronze": style_entry(name="bronze", kind="direction", space="s", description="statue",
                                             metadata={"strength": 0.5})},
        provenance={"by": "fuzz_bundles", "evaluation": {"psnr_input": 20.0}},
    )


# -- running ------------------------------------------------------------------------------------


def attempt(load: Callable[[], object]) -> tuple[str, BaseException | None]:
    """``loaded``, ``bundle_error`` or ``other`` (anything else raised: a bug)."""
    from engine.bundle import BundleError

    try:
        load()
    except BundleError as e:
        return "bundle_error", e
    except Exception as e:  # the point of the fuzz: anything else is counted, not raised
        return "other", e
    return "loaded", None


def fuzz_one(rng: random.Random, target: Target) -> tuple[str, str, BaseException | None]:
    """Apply one to three random edits to ``target``'s pristine bundle and load it."""
    target.reset()
    manifest = copy.deepcopy(target.manifest)
    done = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        if rng.random() < 0.75 or not target.files:
            done.append(mutate_manifest(rng, manifest))
        else:
            name = rng.choice(sorted(target.files))
            op = rng.choice(FILE_EDITS)
            payload = rng.randbytes(rng.randrange(0, 64))
            data = corrupt_bytes(target.files[name], op, rng.random(), payload)
            target.write_file(name, data)
            if data is not None and rng.random() < 0.5 and isinstance(manifest, dict):
                resign(manifest, name, data)
                op += "+resigned"
            done.append(f"{op} {name}")
    target.write_manifest(manifest)
    if rng.random() < 0.05:  # now and then the manifest's own bytes: the JSON parser's turn
        op = rng.choice(FILE_EDITS)
        target.corrupt_manifest(op, rng.random(), rng.randbytes(rng.randrange(0, 16)))
        done.append(f"{op} {MANIFEST}")
    outcome, error = attempt(lambda: target.load(target.directory))
    return outcome, "; ".join(done), error


def run(seconds: float, seed: int = 0, names: list[str] | None = None, max_inputs: int | None = None) -> dict[str, Any]:
    """Fuzz for ``seconds`` (or ``max_inputs``) and return the counts."""
    names = names or ["core", "generator", "bundle"]
    rng = random.Random(seed)
    counts: dict[str, Any] = {"inputs": 0, "loaded": 0, "bundle_error": 0, "other": 0,
                              "bundle_error_with_field": 0, "by_target": {}, "other_examples": []}
    with tempfile.TemporaryDirectory(prefix="fuzz-bundles-") as tmp:
        targets = make_targets(Path(tmp), names)
        start = time.monotonic()
        while time.monotonic() - start < seconds and (max_inputs is None or counts["inputs"] < max_inputs):
            target = targets[counts["inputs"] % len(targets)]
            outcome, what, error = fuzz_one(rng, target)
            counts["inputs"] += 1
            counts[outcome] += 1
            per = counts["by_target"].setdefault(target.name, {"inputs": 0, "loaded": 0, "bundle_error": 0, "other": 0})
            per["inputs"] += 1
            per[outcome] += 1
            if outcome == "bundle_error" and getattr(error, "field", None):
                counts["bundle_error_with_field"] += 1
            if outcome == "other" and len(counts["other_examples"]) < 10:
                assert error is not None
                counts["other_examples"].append({
                    "target": target.name, "edits": what, "error": f"{type(error).__name__}: {error}"[:300],
                    "where": traceback.format_tb(error.__traceback__)[-1].strip()[:300],
                })
        counts["seconds"] = round(time.monotonic() - start, 1)
    counts["seed"] = seed
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-inputs", type=int, default=None)
    ap.add_argument("--targets", default="core,generator,bundle")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--json", action="store_true", help="print the counts as one JSON object")
    args = ap.parse_args(argv)
    import logging

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    logging.disable(logging.INFO)  # save_bundle logs every write
    try:
        counts = run(args.seconds, args.seed, args.targets.split(","), args.max_inputs)
    finally:
        logging.disable(logging.NOTSET)
    if args.json:
        print(json.dumps(counts))
    else:
        for key, value in counts.items():
            print(f"{key}: {value}")
    return 1 if counts["other"] else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere: engine is beside us
    sys.exit(main())
