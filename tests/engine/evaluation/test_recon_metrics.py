"""PSNR and SSIM of the reconstruction evaluation on hand-made images."""

from __future__ import annotations

import math

import pytest
import torch

from engine.evaluation.recon import psnr, ssim


def test_identical_images() -> None:
    torch.manual_seed(0)
    a = torch.rand(2, 3, 24, 24)
    assert torch.allclose(ssim(a, a), torch.ones(2), atol=1e-5)
    assert torch.all(psnr(a, a) >= 99.0)  # MSE clamped at 1e-10 -> 100 dB


def test_known_mse_gives_known_psnr() -> None:
    a = torch.full((1, 3, 8, 8), 0.5)
    b = a + 0.1  # MSE 0.01 -> 20 dB
    assert psnr(a, b).item() == pytest.approx(20.0, abs=1e-3)
    c = a.clone()
    c[..., :4, :] += 0.2  # half the pixels off by 0.2: MSE 0.02
    assert psnr(a, c).item() == pytest.approx(10 * math.log10(1 / 0.02), abs=1e-3)


def test_masked_psnr_ignores_pixels_outside_the_mask() -> None:
    a = torch.full((1, 3, 8, 8), 0.5)
    b = a.clone()
    b[..., :, :4] += 0.1  # left half: MSE 0.01
    b[..., :, 4:] = 1.0  # right half: wildly wrong
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :, :4] = 1
    assert psnr(a, b, mask).item() == pytest.approx(20.0, abs=1e-3)
    assert psnr(a, b).item() < 10.0


def test_ssim_drops_with_noise_and_respects_the_mask() -> None:
    torch.manual_seed(1)
    a = torch.rand(1, 3, 32, 32)
    b = (a + 0.3 * torch.randn_like(a)).clamp(0, 1)
    s = ssim(a, b)
    assert 0.0 < s.item() < 0.9
    c = a.clone()
    c[..., :, 16:] = 0.0
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., :, :8] = 1  # far from the damaged half (more than the 11x11 window's reach)
    assert ssim(a, c, mask).item() == pytest.approx(1.0, abs=1e-4)
    assert ssim(a, c).item() < 0.9
