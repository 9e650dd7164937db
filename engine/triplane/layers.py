"""StyleGAN2 building blocks: equalised-lr FC, modulated conv, FIR up-sampling, synthesis blocks.

Written from the StyleGAN2/EG3D papers and REFERENCE-FACTS §8. Every modulated layer
exposes two paths: ``forward(x, w=...)`` computes its S codes ``s = A(w)`` itself, and
``forward_s(x, s=...)`` takes (possibly edited) S codes directly; the first is defined as
the second applied to ``self.affine(w)``, so the S-space round trip is exact by design.

Modulation is applied to activations rather than weights (x*s -> conv -> *d), which is
the same maths as StyleGAN2's fused grouped conv, works for any batch size and exports to
ONNX as plain Mul/Conv ops.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

NoiseMode = Literal["random", "const", "none"]
"""'random': fresh N(0,1) per call (global RNG); 'const': a fixed buffer; 'none': no noise."""

LRELU_GAIN = math.sqrt(2.0)


def normalize_2nd_moment(x: Tensor, *, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """x * rsqrt(mean(x^2) + eps) along ``dim``."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class FullyConnected(nn.Module):
    """Equalised-learning-rate linear layer.

    Weights are stored as N(0,1)/lr_mul and scaled at run time by lr_mul/sqrt(fan_in);
    the bias is stored as ``bias_init/lr_mul`` and scaled by lr_mul (REFERENCE-FACTS §5).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias_init: float = 0.0,
        lr_multiplier: float = 1.0,
        activation: Literal["linear", "lrelu", "softplus"] = "linear",
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_multiplier))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        """``(..., in) -> (..., out)``."""
        y = F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)
        if self.activation == "lrelu":
            return F.leaky_relu(y, 0.2) * LRELU_GAIN
        if self.activation == "softplus":
            return F.softplus(y)
        return y


def fir_kernel(taps: tuple[float, ...] = (1.0, 3.0, 3.0, 1.0), *, gain: float = 1.0) -> Tensor:
    """Separable 2-D FIR kernel outer(f, f) normalised to sum ``gain``: ``(k, k)``."""
    f = torch.tensor(taps, dtype=torch.float32)
    k = torch.outer(f, f)
    return k / k.sum() * gain


def _depthwise(x: Tensor, kernel: Tensor, pad: tuple[int, int]) -> Tensor:
    """Zero-pad (pad[0] before, pad[1] after on both axes) and correlate each channel with ``kernel``."""
    n, c, h, w = x.shape
    x = F.pad(x.reshape(n * c, 1, h, w), [pad[0], pad[1], pad[0], pad[1]])
    # Channels folded into the batch: one (1, 1, k, k) kernel of static shape (exports cleanly,
    # avoids the slow grouped-conv path). The [1,3,3,1] kernel is symmetric, so correlation
    # equals convolution here.
    y = F.conv2d(x, kernel.to(x.dtype)[None, None])
    return y.reshape(n, c, y.shape[-2], y.shape[-1])


def upsample2d(x: Tensor, kernel: Tensor) -> Tensor:
    """x2 FIR up-sampling (zero insertion, then the kernel with gain 4): ``(N,C,H,W) -> (N,C,2H,2W)``.

    Padding follows upfirdn2d for up=2 and a 4-tap filter: (2, 1).
    """
    n, c, h, w = x.shape
    z = torch.stack([x, torch.zeros_like(x)], dim=3)  # (N, C, H, 2, W): each row then a zero row
    z = torch.stack([z, torch.zeros_like(z)], dim=5)  # (N, C, H, 2, W, 2)
    z = z.reshape(n, c, 2 * h, 2 * w)
    kh = kernel.shape[-1]
    return _depthwise(z, kernel * 4.0, ((kh + 1) // 2, (kh - 2) // 2))


class ModulatedConv(nn.Module):
    """Modulated (optionally demodulated) conv with affine A: w -> s, its S codes (REFERENCE-FACTS §8).

    ``up=2`` is StyleGAN2's transposed conv (stride 2) followed by the [1,3,3,1] FIR with
    padding 1 and gain 4, giving exactly 2H x 2W.
    """

    fir: Tensor

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        w_dim: int,
        kernel_size: int,
        up: int = 1,
        demodulate: bool = True,
    ) -> None:
        super().__init__()
        if up not in (1, 2):
            raise ValueError(f"up must be 1 or 2, got {up}")
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.register_buffer("fir", fir_kernel(), persistent=False)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.up = up
        self.demodulate = demodulate
        self.padding = kernel_size // 2

    def conv(self, x: Tensor, *, s: Tensor) -> Tensor:
        """``x (N, I, H, W)``, S codes ``s (N, I)`` -> ``(N, O, H*up, W*up)`` (no bias, no activation)."""
        w = self.weight
        x = x * s[:, :, None, None]
        if self.up == 1:
            y = F.conv2d(x, w, padding=self.padding)
        else:
            y = F.conv_transpose2d(x, w.transpose(0, 1), stride=2)
            y = _depthwise(y, self.fir * 4.0, (1, 1))
        if self.demodulate:
            # d_o = (sum_{i,k} (W_oik s_i)^2 + 1e-8)^-1/2, per sample.
            dcoef = (
                (w.square().sum(dim=(2, 3))[None] * s.square()[:, None, :]).sum(dim=2) + 1e-8
            ).rsqrt()
            y = y * dcoef[:, :, None, None]
        return y


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv + per-pixel noise + bias + lrelu(0.2)*sqrt(2), then optionally clamped.

    The clamp is EG3D's ``conv_clamp * gain`` applied after bias and activation gain; the
    layer gain is 1 in 'skip' blocks, so it is ``+-conv_clamp``.
    """

    noise_const: Tensor

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        w_dim: int,
        resolution: int,
        up: int = 1,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.mod = ModulatedConv(in_channels, out_channels, w_dim=w_dim, kernel_size=3, up=up)
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.resolution = resolution
        self.conv_clamp = conv_clamp

    @property
    def s_dim(self) -> int:
        """Number of S codes this layer reads (its input channels)."""
        return self.mod.in_channels

    def affine(self, w: Tensor) -> Tensor:
        """``(N, w_dim) -> (N, in_channels)``."""
        return self.mod.affine(w)

    def forward_s(self, x: Tensor, *, s: Tensor, noise_mode: NoiseMode = "const") -> Tensor:
        """``x (N, I, H, W)``, ``s (N, I)`` -> ``(N, O, H*up, W*up)``."""
        y = self.mod.conv(x, s=s)
        if noise_mode == "random":
            noise = torch.randn(
                y.shape[0], 1, self.resolution, self.resolution, dtype=y.dtype, device=y.device
            )
            y = y + noise * self.noise_strength
        elif noise_mode == "const":
            y = y + self.noise_const * self.noise_strength
        y = F.leaky_relu(y + self.bias[None, :, None, None], 0.2) * LRELU_GAIN
        if self.conv_clamp is not None:
            y = y.clamp(-self.conv_clamp, self.conv_clamp)
        return y

    def forward(self, x: Tensor, *, w: Tensor, noise_mode: NoiseMode = "const") -> Tensor:
        return self.forward_s(x, s=self.affine(w), noise_mode=noise_mode)


class ToRGB(nn.Module):
    """1x1 modulated conv without demodulation; S codes scaled by 1/sqrt(C_in), then bias,
    then the optional clamp to ``+-conv_clamp`` (as EG3D's ToRGBLayer)."""

    def __init__(
        self, in_channels: int, out_channels: int, *, w_dim: int, conv_clamp: float | None = None
    ) -> None:
        super().__init__()
        self.mod = ModulatedConv(in_channels, out_channels, w_dim=w_dim, kernel_size=1, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)
        self.conv_clamp = conv_clamp

    @property
    def s_dim(self) -> int:
        """Number of S codes this layer reads (its input channels)."""
        return self.mod.in_channels

    def affine(self, w: Tensor) -> Tensor:
        """``(N, w_dim) -> (N, in_channels)``; S space holds A(w) before the 1/sqrt(C_in) gain."""
        return self.mod.affine(w)

    def forward_s(self, x: Tensor, *, s: Tensor) -> Tensor:
        y = self.mod.conv(x, s=s * self.weight_gain) + self.bias[None, :, None, None]
        if self.conv_clamp is not None:
            y = y.clamp(-self.conv_clamp, self.conv_clamp)
        return y

    def forward(self, x: Tensor, *, w: Tensor) -> Tensor:
        return self.forward_s(x, s=self.affine(w))


class SynthesisBlock(nn.Module):
    """One resolution of a 'skip' StyleGAN2 synthesis network.

    The first block (``in_channels == 0``) starts from a learned 4x4 constant and has only
    conv1; others up-sample with conv0. The running image is FIR-up-sampled and summed with
    this block's toRGB. S codes are consumed in the order conv0, conv1, torgb.
    """

    fir: Tensor

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        w_dim: int,
        resolution: int,
        img_channels: int,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.conv0: SynthesisLayer | None = None
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(
                in_channels, out_channels, w_dim=w_dim, resolution=resolution, up=2, conv_clamp=conv_clamp
            )
        self.conv1 = SynthesisLayer(
            out_channels, out_channels, w_dim=w_dim, resolution=resolution, conv_clamp=conv_clamp
        )
        self.torgb = ToRGB(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
        self.register_buffer("fir", fir_kernel(), persistent=False)

    @property
    def num_conv(self) -> int:
        return 1 if self.conv0 is None else 2

    def modulated_layers(self) -> list[tuple[str, SynthesisLayer | ToRGB]]:
        """(name, layer) in the order their S codes are consumed."""
        layers: list[tuple[str, SynthesisLayer | ToRGB]] = []
        if self.conv0 is not None:
            layers.append(("conv0", self.conv0))
        layers += [("conv1", self.conv1), ("torgb", self.torgb)]
        return layers

    def forward_s(
        self,
        x: Tensor | None,
        img: Tensor | None,
        *,
        s_codes: list[Tensor],
        noise_mode: NoiseMode = "const",
        batch: int,
    ) -> tuple[Tensor, Tensor]:
        """Run the block from per-layer S codes (order of :meth:`modulated_layers`).

        Args:
            x: ``(N, in_channels, R/2, R/2)`` or None for the first block.
            img: running skip image ``(N, img_channels, R/2, R/2)`` or None.
            s_codes: one ``(N, s_dim)`` tensor per modulated layer.
            batch: N (needed when the block starts from its constant).
        Returns:
            x ``(N, out_channels, R, R)`` and img ``(N, img_channels, R, R)``.
        """
        it = iter(s_codes)
        if self.conv0 is None:
            x = self.const[None].expand(batch, -1, -1, -1)
        else:
            if x is None:
                raise ValueError("a non-initial block needs an input")
            x = self.conv0.forward_s(x, s=next(it), noise_mode=noise_mode)
        x = self.conv1.forward_s(x, s=next(it), noise_mode=noise_mode)
        y = self.torgb.forward_s(x, s=next(it))
        if img is not None:
            y = y + upsample2d(img, self.fir)
        return x, y

    def forward(
        self,
        x: Tensor | None,
        img: Tensor | None,
        *,
        ws: list[Tensor],
        noise_mode: NoiseMode = "const",
    ) -> tuple[Tensor, Tensor]:
        """Same as :meth:`forward_s` with each layer computing its own S codes from its w ``(N, w_dim)``."""
        layers = self.modulated_layers()
        if len(ws) != len(layers):
            raise ValueError(f"block {self.resolution} needs {len(layers)} ws, got {len(ws)}")
        s_codes = [layer.affine(w) for (_, layer), w in zip(layers, ws, strict=True)]
        return self.forward_s(x, img, s_codes=s_codes, noise_mode=noise_mode, batch=ws[0].shape[0])


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars."""
    return int(sum(int(np.prod(p.shape)) for p in module.parameters()))
