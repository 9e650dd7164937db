from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from engine.bundle import FORMAT_VERSION, BundleError, StyleEntry, load_bundle, save_bundle, sha256_file


def _weights() -> dict[str, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return {
        "net": {
            "w": torch.randn(4, 3, generator=g),
            "b": torch.randn(4, generator=g).to(torch.float16),
            "step": torch.tensor([7], dtype=torch.int64),
        },
        "head": {"fc": torch.randn(2, 2, generator=g) * 1e-30},
    }


def _save(path: Path) -> dict[str, object]:
    styles = {"bronze": torch.linspace(-1, 1, 5)}
    entries = {"bronze": StyleEntry(name="bronze", kind="direction", space="s", description="statue")}
    return save_bundle(
        path,
        kind="test-model",
        preset="tiny",
        config={"width": 4},
        components=_weights(),
        styles=styles,
        style_entries=entries,
        provenance={"trainer": "unit test", "steps": 0},
    )


EXPECTED: dict[str, dict[str, tuple[int, ...]]] = {"net": {"w": (4, 3), "b": (4,), "step": (1,)}, "head": {"fc": (2, 2)}}


def test_round_trip_is_bit_exact(tmp_path: Path) -> None:
    manifest = _save(tmp_path)
    b = load_bundle(tmp_path, kind="test-model", expected=EXPECTED)
    for comp, tensors in _weights().items():
        for k, v in tensors.items():
            got = b.components[comp][k]
            assert got.dtype == v.dtype and torch.equal(got, v)
    assert torch.equal(b.styles["bronze"], torch.linspace(-1, 1, 5))
    assert b.style_entries["bronze"].description == "statue"
    assert b.manifest == manifest and b.preset == "tiny" and b.provenance["trainer"] == "unit test"
    assert b.manifest["format_version"] == FORMAT_VERSION
    assert b.manifest["components"]["net"]["sha256"] == sha256_file(tmp_path / "net.safetensors")


def test_empty_style_bank(tmp_path: Path) -> None:
    save_bundle(tmp_path, kind="k", preset="p", config={}, components=_weights())
    b = load_bundle(tmp_path)
    assert b.styles == {} and b.style_entries == {}
    assert not (tmp_path / "styles.safetensors").exists()


def test_truncated_file(tmp_path: Path) -> None:
    _save(tmp_path)
    f = tmp_path / "net.safetensors"
    f.write_bytes(f.read_bytes()[:-9])
    with pytest.raises(BundleError, match=r"net\.safetensors is truncated"):
        load_bundle(tmp_path)


def test_flipped_byte(tmp_path: Path) -> None:
    _save(tmp_path)
    f = tmp_path / "head.safetensors"
    data = bytearray(f.read_bytes())
    data[-3] ^= 0x01
    f.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"head\.safetensors fails its sha256"):
        load_bundle(tmp_path)


def test_wrong_shape_for_the_model(tmp_path: Path) -> None:
    _save(tmp_path)
    expected = {**EXPECTED, "net": {**EXPECTED["net"], "w": (4, 5)}}
    with pytest.raises(BundleError, match=r"wrong shape for 'w'.*\(4, 3\).*\(4, 5\)"):
        load_bundle(tmp_path, expected=expected)


def test_missing_and_unexpected_keys_for_the_model(tmp_path: Path) -> None:
    _save(tmp_path)
    with pytest.raises(BundleError, match=r"missing keys \['gamma'\]"):
        load_bundle(tmp_path, expected={**EXPECTED, "head": {"fc": (2, 2), "gamma": (2,)}})
    with pytest.raises(BundleError, match=r"unexpected keys \['step'\]"):
        load_bundle(tmp_path, expected={**EXPECTED, "net": {"w": (4, 3), "b": (4,)}})
    with pytest.raises(BundleError, match=r"missing components \['tail'\]"):
        load_bundle(tmp_path, expected={**EXPECTED, "tail": {}})


def _rewrite(tmp_path: Path, name: str, tensors: dict[str, torch.Tensor]) -> None:
    """Replace a file consistently (fresh size and hash) so only the content check can object."""
    f = tmp_path / f"{name}.safetensors"
    save_file(tensors, str(f))
    m = json.loads((tmp_path / "manifest.json").read_text())
    m["components"][name].update(bytes=f.stat().st_size, sha256=sha256_file(f))
    (tmp_path / "manifest.json").write_text(json.dumps(m))


def test_file_keys_or_shapes_disagree_with_manifest(tmp_path: Path) -> None:
    _save(tmp_path)
    w = _weights()["net"]
    _rewrite(tmp_path, "net", {"w": w["w"], "b": w["b"]})
    with pytest.raises(BundleError, match=r"keys differ from the manifest: missing \['step'\]"):
        load_bundle(tmp_path)
    _rewrite(tmp_path, "net", {**w, "w": torch.zeros(3, 4)})
    with pytest.raises(
        BundleError, match=r"tensor 'w' is float32\[3, 4\] but the manifest says float32\[4, 3\]"
    ):
        load_bundle(tmp_path)


def test_unknown_version_and_bad_manifest(tmp_path: Path) -> None:
    _save(tmp_path)
    path = tmp_path / "manifest.json"
    m = json.loads(path.read_text())
    path.write_text(json.dumps({**m, "format_version": 99}))
    with pytest.raises(BundleError, match="unknown bundle format version 99"):
        load_bundle(tmp_path)
    path.write_text(json.dumps({k: v for k, v in m.items() if k != "components"}))
    with pytest.raises(BundleError, match="missing field 'components'"):
        load_bundle(tmp_path)
    path.write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(tmp_path)
    path.write_text(json.dumps(m))
    with pytest.raises(BundleError, match="kind is 'test-model', expected 'other'"):
        load_bundle(tmp_path, kind="other")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no manifest"):
        load_bundle(tmp_path / "nowhere")
    _save(tmp_path)
    (tmp_path / "styles.safetensors").unlink()
    with pytest.raises(BundleError, match=r"style bank: file styles\.safetensors is missing"):
        load_bundle(tmp_path)


def test_garbage_with_matching_hash_is_reported(tmp_path: Path) -> None:
    _save(tmp_path)
    f = tmp_path / "head.safetensors"
    f.write_bytes(b"\x00" * 64)
    m = json.loads((tmp_path / "manifest.json").read_text())
    m["components"]["head"].update(bytes=64, sha256=sha256_file(f))
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="not a readable safetensors file"):
        load_bundle(tmp_path)


def test_styles_must_have_entries(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="tensors only"):
        save_bundle(tmp_path, kind="k", preset="p", config={}, components={}, styles={"x": torch.zeros(1)})
