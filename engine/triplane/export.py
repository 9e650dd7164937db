"""ONNX export of the three run-time graphs, each with a declared contract.

* ``synthesis``: backbone S codes ``s_codes (1, S_synthesis)`` -> planes ``(1, 3, C, R, R)``
  (constant noise);
* ``render``: planes + camera ``(1, 25)`` + jitter + importance u -> features, depth, opacity,
  semantics at the neural rendering resolution (decoder inside; fixed sample counts);
* ``superres``: features ``(1, C, r, r)`` + super-resolution S codes ``s_codes (1, S_superres)``
  -> image ``(1, 3, 4r, 4r)``.

Inputs are S codes (not w) so SAT3D-edited S vectors run unchanged. Exports use the
TorchScript exporter (``dynamo=False``; the dynamo one needs onnxscript), opset >= 17
(GridSample needs 16), fixed batch 1 and only standard ONNX ops.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from engine.camera import orbit_label, rays
from engine.triplane.generator import TriplaneGenerator
from engine.triplane.renderer import RenderNoise, to_image

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17


class SynthesisGraph(nn.Module):
    def __init__(self, generator: TriplaneGenerator) -> None:
        super().__init__()
        self.generator = generator
        self.start, self.stop = generator.stylespace.component_range("synthesis")

    def forward(self, s_codes: Tensor) -> Tensor:
        layers = self.generator.stylespace.split(s_codes, component="synthesis")
        return self.generator.backbone.forward_s(s_codes=layers, noise_mode="const")


class RenderGraph(nn.Module):
    def __init__(self, generator: TriplaneGenerator) -> None:
        super().__init__()
        self.decoder = generator.decoder
        self.renderer = generator.renderer
        self.resolution = generator.config.render.resolution

    def forward(
        self, planes: Tensor, camera: Tensor, jitter: Tensor, importance_u: Tensor
    ) -> tuple[Tensor, ...]:
        origins, dirs = rays(camera, self.resolution)
        out = self.renderer(
            planes=planes,
            decoder=self.decoder,
            origins=origins,
            directions=dirs,
            noise=RenderNoise(jitter=jitter, importance_u=importance_u),
        )
        r = self.resolution
        return (
            to_image(out.features, resolution=r),
            to_image(out.depth, resolution=r),
            to_image(out.opacity, resolution=r),
            to_image(out.semantics, resolution=r),
        )


class SuperResGraph(nn.Module):
    def __init__(self, generator: TriplaneGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, features: Tensor, s_codes: Tensor) -> Tensor:
        layers = self.generator.stylespace.split(s_codes, component="superres")
        return self.generator.superres.forward_s(
            rgb=features[:, :3], features=features, s_codes=layers, noise_mode="none"
        )


@dataclass(frozen=True)
class ExportContract:
    """What a run-time engine needs to know about one exported graph."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    sample: tuple[Tensor, ...]
    """Sample inputs (also used for parity checks)."""
    module: nn.Module

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "file": f"{self.name}.onnx",
            "inputs": {n: list(t.shape) for n, t in zip(self.inputs, self.sample, strict=True)},
            "outputs": list(self.outputs),
            "dtype": "float32",
        }


def contracts(generator: TriplaneGenerator, *, seed: int = 0) -> list[ExportContract]:
    """The three graphs with realistic sample inputs from a seeded z and an off-centre camera."""
    gen = torch.Generator().manual_seed(seed)
    cfg = generator.config
    z = torch.randn(1, cfg.mapping.z_dim, generator=gen)
    camera = torch.tensor(orbit_label(12.0, -6.0), dtype=torch.float32)[None]
    with torch.no_grad():
        ws = generator.map(z=z, c=camera)
        s = generator.affine(ws=ws)
        a, b = generator.stylespace.component_range("synthesis")
        c, d = generator.stylespace.component_range("superres")
        planes = generator.synthesis_from_s(s=s)
        noise = RenderNoise.random(cfg.render, batch=1, generator=gen)
        origins, dirs = rays(camera, cfg.render.resolution)
        out = generator.renderer(
            planes=planes, decoder=generator.decoder, origins=origins, directions=dirs, noise=noise
        )
        features = to_image(out.features, resolution=cfg.render.resolution)
    return [
        ExportContract(
            "synthesis", ("s_codes",), ("planes",), (s[:, a:b].contiguous(),), SynthesisGraph(generator)
        ),
        ExportContract(
            "render",
            ("planes", "camera", "jitter", "importance_u"),
            ("features", "depth", "opacity", "semantics"),
            (planes, camera, noise.jitter, noise.importance_u),
            RenderGraph(generator),
        ),
        ExportContract(
            "superres",
            ("features", "s_codes"),
            ("image",),
            (features, s[:, c:d].contiguous()),
            SuperResGraph(generator),
        ),
    ]


def export_onnx(
    contract: ExportContract, path: str | os.PathLike[str], *, opset: int = DEFAULT_OPSET
) -> Path:
    """Export one graph to ``path``; returns it."""
    if opset < 17:
        raise ValueError(f"opset must be >= 17, got {opset}")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    contract.module.eval()
    # Shape checks become constants in the traced graph; that is intended (fixed shapes).
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*Constant folding.*")
        warnings.filterwarnings("ignore", message=".*shape_type_inference.*")
        # dynamo=False is deliberate (the dynamo exporter needs onnxscript); silence its nag.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx.*")
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        torch.onnx.export(
            contract.module,
            contract.sample,
            str(out),
            input_names=list(contract.inputs),
            output_names=list(contract.outputs),
            opset_version=opset,
            dynamo=False,
        )
    log.info("exported %s -> %s", contract.name, out)
    return out


def export_all(
    generator: TriplaneGenerator, directory: str | os.PathLike[str], *, opset: int = DEFAULT_OPSET
) -> list[Path]:
    """Export synthesis, render and superres plus ``contracts.json`` into ``directory``."""
    root = Path(directory)
    cs = contracts(generator)
    paths = [export_onnx(c, root / f"{c.name}.onnx", opset=opset) for c in cs]
    (root / "contracts.json").write_text(
        json.dumps([c.to_json() for c in cs], indent=2) + "\n", encoding="utf-8"
    )
    return paths


@dataclass(frozen=True)
class Parity:
    name: str
    output: str
    max_abs: float
    rel: float
    """max |onnx - torch| / max |torch| over the output."""


def onnx_parity(contract: ExportContract, path: str | os.PathLike[str]) -> list[Parity]:
    """Run the exported graph in ONNX Runtime (CPU) on the contract's sample and compare with PyTorch."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feeds = {n: t.detach().cpu().numpy() for n, t in zip(contract.inputs, contract.sample, strict=True)}
    got = session.run(list(contract.outputs), feeds)
    with torch.no_grad():
        ref = contract.module(*contract.sample)
    refs = (ref,) if isinstance(ref, Tensor) else tuple(ref)
    report = []
    for name, g, r in zip(contract.outputs, got, refs, strict=True):
        rn = r.detach().cpu().numpy()
        diff = float(np.abs(np.asarray(g) - rn).max())
        scale = float(np.abs(rn).max())
        report.append(Parity(contract.name, name, diff, diff / max(scale, 1e-12)))
    return report


def check_all(
    generator: TriplaneGenerator, directory: str | os.PathLike[str], *, tolerance: float = 1e-4
) -> list[Parity]:
    """Parity of every exported graph in ``directory``; raises RuntimeError above ``tolerance``."""
    report: list[Parity] = []
    for c in contracts(generator):
        report += onnx_parity(c, Path(directory) / f"{c.name}.onnx")
    bad = [p for p in report if not p.rel <= tolerance]
    if bad:
        raise RuntimeError(f"ONNX parity above {tolerance}: {bad}")
    return report
