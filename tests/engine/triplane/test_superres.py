"""Super-resolution ``conv_clamp`` (EG3D's fp16 SR clamp) and configs written before it existed."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
from torch import Tensor

from engine.triplane.config import GeneratorConfig, SuperResConfig, config_from_dict, config_to_dict
from engine.triplane.layers import SynthesisBlock, SynthesisLayer, ToRGB
from engine.triplane.presets import eg3d, tiny
from engine.triplane.superres import SuperResolution
from tests.engine.triplane.conftest import micro_config

C_IN, W_DIM, R = 4, 16, 8


def _superres(conv_clamp: float | None) -> SuperResolution:
    torch.manual_seed(0)
    sr = SuperResolution(
        SuperResConfig(channels=(8, 4), output_resolution=4 * R, conv_clamp=conv_clamp),
        in_channels=C_IN,
        w_dim=W_DIM,
        w_index=0,
    ).eval()
    with torch.no_grad():  # non-zero biases so the clamp sees bias + activation
        for name, p in sr.named_parameters():
            if name.endswith("bias") and "affine" not in name:
                p.normal_()
    return sr


def _inputs() -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(1)
    features = torch.randn(2, C_IN, R, R, generator=g)
    return features[:, :3], features, torch.randn(2, W_DIM, generator=g)


def _previous_forward(sr: SuperResolution, rgb: Tensor, features: Tensor, w: Tensor) -> Tensor:
    """The SR before ``conv_clamp`` existed: blocks built without a clamp, same weights."""
    c0, c1 = sr.config.channels
    block0 = SynthesisBlock(C_IN, c0, w_dim=W_DIM, resolution=2 * R, img_channels=3)
    block1 = SynthesisBlock(c0, c1, w_dim=W_DIM, resolution=4 * R, img_channels=3)
    block0.load_state_dict(sr.block0.state_dict())
    block1.load_state_dict(sr.block1.state_dict())
    x, img = block0(features, rgb, ws=[w, w, w], noise_mode="none")
    _, img = block1(x, img, ws=[w, w, w], noise_mode="none")
    return img


def _record(sr: SuperResolution) -> tuple[list[Tensor], list[Tensor]]:
    """Outputs of every conv layer and toRGB (blocks call ``forward_s``, so wrap that)."""
    convs: list[Tensor] = []
    rgbs: list[Tensor] = []

    def wrap(layer: SynthesisLayer | ToRGB, into: list[Tensor]) -> None:
        inner = layer.forward_s

        def forward_s(*args: Any, **kwargs: Any) -> Tensor:
            out = inner(*args, **kwargs)
            into.append(out.detach())
            return out

        layer.forward_s = forward_s  # type: ignore[method-assign]

    for m in sr.modules():
        if isinstance(m, SynthesisLayer | ToRGB):
            wrap(m, rgbs if isinstance(m, ToRGB) else convs)
    return convs, rgbs


def test_no_clamp_is_the_previous_behaviour_bit_for_bit() -> None:
    rgb, features, w = _inputs()
    sr = _superres(None)
    assert all(m.conv_clamp is None for m in sr.modules() if isinstance(m, SynthesisLayer | ToRGB))
    huge = _superres(1e30)
    with torch.no_grad():
        out = sr(rgb=rgb, features=features, w=w)
        assert torch.equal(out, _previous_forward(sr, rgb, features, w))
        assert torch.equal(huge(rgb=rgb, features=features, w=w), out)


@pytest.mark.parametrize("path", ["w", "s_codes"])
def test_clamp_limits_every_sr_activation(path: str) -> None:
    rgb, features, w = _inputs()
    clamp = 0.0625  # exact in float32
    free, clamped = _superres(None), _superres(clamp)
    assert all(m.conv_clamp == clamp for m in clamped.modules() if isinstance(m, SynthesisLayer | ToRGB))
    free_convs, free_rgbs = _record(free)
    convs, rgbs = _record(clamped)

    def run(sr: SuperResolution) -> Tensor:
        if path == "w":
            return sr(rgb=rgb, features=features, w=w)
        s_codes = [layer.affine(w) for b in (sr.block0, sr.block1) for _, layer in b.modulated_layers()]
        return sr.forward_s(rgb=rgb, features=features, s_codes=s_codes)

    with torch.no_grad():
        a, b = run(free), run(clamped)
    assert len(convs) == 4 and len(rgbs) == 2
    # Unclamped activations exceed the clamp; clamped ones stay within it (conv: after bias and
    # the lrelu gain; toRGB: after its bias), and the image changes.
    assert max(t.abs().max().item() for t in free_convs) > clamp
    assert max(t.abs().max().item() for t in free_rgbs) > clamp
    assert all(t.abs().max().item() <= clamp for t in convs + rgbs)
    assert all((t.abs() == clamp).any() for t in convs + rgbs)
    assert (a - b).abs().max() > 1e-3


def test_configs_without_sr_conv_clamp_still_load() -> None:
    for cfg in (tiny(), eg3d(), micro_config()):
        data = config_to_dict(cfg)
        assert "conv_clamp" in data["superres"]
        del data["superres"]["conv_clamp"]  # a manifest written before the field existed
        loaded = config_from_dict(GeneratorConfig, data)
        assert loaded.superres.conv_clamp is None
        assert loaded == dataclasses.replace(cfg, superres=dataclasses.replace(cfg.superres, conv_clamp=None))
    clamped = config_to_dict(eg3d())
    assert clamped["superres"]["conv_clamp"] == 256.0
    assert config_from_dict(GeneratorConfig, clamped) == eg3d()
    with pytest.raises(ValueError, match="expected a number"):
        config_from_dict(SuperResConfig, {"conv_clamp": "256"})
