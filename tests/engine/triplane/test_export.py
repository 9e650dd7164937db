from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from engine.triplane.export import contracts, export_onnx, onnx_parity
from engine.triplane.generator import TriplaneGenerator


@pytest.mark.parametrize("name", ["synthesis", "render", "superres"])
def test_onnx_export_matches_pytorch(micro: TriplaneGenerator, tmp_path: Path, name: str) -> None:
    contract = next(c for c in contracts(micro) if c.name == name)
    path = export_onnx(contract, tmp_path / f"{name}.onnx", opset=17)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    custom = {(n.domain, n.op_type) for n in model.graph.node if n.domain not in ("", "ai.onnx")}
    assert not custom, f"custom ops: {custom}"
    assert [i.name for i in model.graph.input] == list(contract.inputs)
    for p in onnx_parity(contract, path):
        assert p.rel <= 1e-4, p


def test_render_graph_has_no_searchsorted_or_random(micro: TriplaneGenerator, tmp_path: Path) -> None:
    contract = next(c for c in contracts(micro) if c.name == "render")
    model = onnx.load(str(export_onnx(contract, tmp_path / "render.onnx")))
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"RandomUniform", "RandomUniformLike", "RandomNormal", "RandomNormalLike"}
    assert "GridSample" in ops


def test_opset_below_17_is_refused(micro: TriplaneGenerator, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="17"):
        export_onnx(contracts(micro)[0], tmp_path / "x.onnx", opset=16)


@pytest.mark.slow
def test_tiny_preset_exports_with_parity(tmp_path: Path) -> None:
    import torch

    from engine.triplane.export import check_all, export_all
    from engine.triplane.presets import tiny

    torch.manual_seed(0)
    g = TriplaneGenerator(tiny()).eval()
    export_all(g, tmp_path)
    assert all(p.rel <= 1e-4 for p in check_all(g, tmp_path))


def test_s_code_inputs_are_named_s_codes(micro: TriplaneGenerator) -> None:
    inputs = {c.name: c.inputs for c in contracts(micro)}
    assert inputs["synthesis"] == ("s_codes",)
    assert inputs["superres"] == ("features", "s_codes")


def test_superres_with_conv_clamp_exports_as_clip(tmp_path: Path) -> None:
    import dataclasses

    import torch

    from tests.engine.triplane.conftest import micro_config

    base = micro_config()
    cfg = dataclasses.replace(base, superres=dataclasses.replace(base.superres, conv_clamp=0.5))
    torch.manual_seed(1234)
    g = TriplaneGenerator(cfg).eval()
    contract = next(c for c in contracts(g) if c.name == "superres")
    path = export_onnx(contract, tmp_path / "superres.onnx", opset=17)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert "Clip" in {n.op_type for n in model.graph.node}
    for p in onnx_parity(contract, path):
        assert p.rel <= 1e-4, p
