"""LPIPS-VGG from a local safetensors file (random weights with the real names and shapes)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from engine.training.losses import LPIPS, load_lpips

VGG_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


def random_weights(seed: int = 0) -> dict[str, torch.Tensor]:
    """Every key of the converted torchvision VGG16 + LPIPS vgg.pth, He-initialised."""
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    c_in = 3
    widths = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
    for i, c in zip(VGG_CONVS, widths, strict=True):
        out[f"features.{i}.weight"] = torch.randn(c, c_in, 3, 3, generator=g) * math.sqrt(2 / (9 * c_in))
        out[f"features.{i}.bias"] = torch.randn(c, generator=g) * 0.01
        c_in = c
    for k, c in enumerate((64, 128, 256, 512, 512)):
        out[f"lin{k}.model.1.weight"] = torch.rand(1, c, 1, 1, generator=g) / c
    return out


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lpips") / "lpips_vgg.safetensors"
    save_file(random_weights(), str(path))
    return path


def test_keys_match_the_converted_names() -> None:
    assert set(LPIPS().state_dict()) == set(random_weights())


def test_distance_zero_for_identical_positive_for_different(weights_file: Path) -> None:
    lpips = load_lpips(weights_file)
    torch.manual_seed(0)
    a = torch.rand(2, 3, 32, 32)
    b = (a + 0.2 * torch.randn_like(a)).clamp(0, 1)
    with torch.no_grad():
        same = lpips(a, a)
        diff = lpips(a, b)
    assert same.shape == (2,) and diff.shape == (2,)
    assert torch.all(same.abs() < 1e-7)
    assert torch.all(diff > 1e-4)
    # Symmetric and larger for a larger change.
    with torch.no_grad():
        far = lpips(a, 1 - a)
    assert torch.allclose(lpips(b, a), diff, rtol=1e-4, atol=1e-7)
    assert torch.all(far > diff)


def test_frozen_eval_and_gradients_reach_the_input(weights_file: Path) -> None:
    lpips = load_lpips(weights_file)
    assert isinstance(lpips, torch.nn.Module)
    assert not lpips.training
    assert all(not p.requires_grad for p in lpips.parameters())
    torch.manual_seed(1)
    target = torch.rand(1, 3, 16, 16)
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    lpips(x, target).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in lpips.parameters())


def test_loaded_weights_are_the_files(weights_file: Path) -> None:
    lpips = load_lpips(weights_file)
    assert isinstance(lpips, torch.nn.Module)
    ref = random_weights()
    sd = lpips.state_dict()
    assert torch.equal(sd["features.28.weight"], ref["features.28.weight"])
    assert torch.equal(sd["lin4.model.1.weight"], ref["lin4.model.1.weight"])


def _save(tmp_path: Path, tensors: dict[str, torch.Tensor]) -> Path:
    path = tmp_path / "w.safetensors"
    save_file(tensors, str(path))
    return path


def test_missing_key_is_named(tmp_path: Path) -> None:
    w = random_weights()
    del w["lin2.model.1.weight"]
    with pytest.raises(ValueError, match=r"missing key 'lin2\.model\.1\.weight'"):
        load_lpips(_save(tmp_path, w))


def test_unexpected_key_is_named(tmp_path: Path) -> None:
    w = random_weights()
    w["classifier.0.weight"] = torch.zeros(2, 2)
    with pytest.raises(ValueError, match=r"unexpected key 'classifier\.0\.weight'"):
        load_lpips(_save(tmp_path, w))


def test_wrong_shape_is_named(tmp_path: Path) -> None:
    w = random_weights()
    w["features.5.weight"] = torch.zeros(128, 64, 1, 1)
    with pytest.raises(ValueError, match=r"features\.5\.weight has shape \(128, 64, 1, 1\), expected \(128, 64, 3, 3\)"):
        load_lpips(_save(tmp_path, w))


def test_negative_lin_weight_is_refused(tmp_path: Path) -> None:
    w = random_weights()
    w["lin0.model.1.weight"] = -w["lin0.model.1.weight"]
    with pytest.raises(ValueError, match="lin0.model.1.weight has negative entries"):
        load_lpips(_save(tmp_path, w))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no file"):
        load_lpips(tmp_path / "nope.safetensors")


def test_not_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "vgg.pth"
    path.write_bytes(b"PK\x03\x04 this is a zip/pickle, not safetensors" * 4)
    with pytest.raises(ValueError, match="not a safetensors file"):
        load_lpips(path)


def test_wrong_input_shapes() -> None:
    with pytest.raises(ValueError, match="two"):
        LPIPS()(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 32, 32))
