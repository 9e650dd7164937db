"""Super-resolution: two StyleGAN2 synthesis blocks, x2 each (REFERENCE-FACTS §6, Hybrid8XDC).

block0: C -> channels[0], r -> 2r; block1: channels[0] -> channels[1], 2r -> 4r; the raw RGB
(first three feature channels) is the skip image, FIR-up-sampled and summed with each
block's toRGB; the final skip image is the output (no tanh). Every layer reads the last w.
The tiny preset uses the same structure with fewer channels. EG3D runs it with
noise_mode 'none' for FFHQ; so do we unless told otherwise. ``config.conv_clamp`` clamps
every layer exactly like the backbone's ``SynthesisConfig.conv_clamp`` (EG3D's FFHQ SR: 256).
"""

from __future__ import annotations

from torch import Tensor, nn

from engine.triplane.config import SuperResConfig
from engine.triplane.layers import NoiseMode, SynthesisBlock
from engine.triplane.stylespace import Component, LayerKind


class SuperResolution(nn.Module):
    """rgb ``(N, 3, r, r)`` + features ``(N, C, r, r)`` + S codes -> image ``(N, 3, 4r, 4r)``."""

    def __init__(self, config: SuperResConfig, *, in_channels: int, w_dim: int, w_index: int) -> None:
        super().__init__()
        self.config = config
        self.input_resolution = config.output_resolution // 4
        self.w_index = w_index
        c0, c1 = config.channels
        r = self.input_resolution
        clamp = config.conv_clamp
        self.block0 = SynthesisBlock(
            in_channels, c0, w_dim=w_dim, resolution=2 * r, img_channels=3, conv_clamp=clamp
        )
        self.block1 = SynthesisBlock(c0, c1, w_dim=w_dim, resolution=4 * r, img_channels=3, conv_clamp=clamp)

    def stylespace_rows(self) -> list[tuple[str, Component, LayerKind, int, int, int]]:
        rows: list[tuple[str, Component, LayerKind, int, int, int]] = []
        for bname, block in (("block0", self.block0), ("block1", self.block1)):
            for name, layer in block.modulated_layers():
                kind: LayerKind = "torgb" if name == "torgb" else "conv"
                rows.append(
                    (
                        f"superres.{bname}.{name}",
                        "superres",
                        kind,
                        self.w_index,
                        block.resolution,
                        layer.s_dim,
                    )
                )
        return rows

    def _check(self, rgb: Tensor, features: Tensor) -> None:
        r = self.input_resolution
        if rgb.shape[1:] != (3, r, r) or features.shape[2:] != (r, r) or rgb.shape[0] != features.shape[0]:
            raise ValueError(
                f"superres expects rgb (N, 3, {r}, {r}) and features (N, C, {r}, {r}); "
                f"got {tuple(rgb.shape)} and {tuple(features.shape)}"
            )

    def forward_s(
        self, *, rgb: Tensor, features: Tensor, s_codes: list[Tensor], noise_mode: NoiseMode = "none"
    ) -> Tensor:
        """From per-layer S codes in S-table order (6 tensors: block0 conv0, conv1, torgb, block1 ...)."""
        self._check(rgb, features)
        if len(s_codes) != 6:
            raise ValueError(f"superres needs 6 S-code tensors, got {len(s_codes)}")
        n = rgb.shape[0]
        x, img = self.block0.forward_s(features, rgb, s_codes=s_codes[:3], noise_mode=noise_mode, batch=n)
        _, img = self.block1.forward_s(x, img, s_codes=s_codes[3:], noise_mode=noise_mode, batch=n)
        return img

    def forward(self, *, rgb: Tensor, features: Tensor, w: Tensor, noise_mode: NoiseMode = "none") -> Tensor:
        """``w (N, w_dim)`` is the generator's last w, used for every layer."""
        self._check(rgb, features)
        x, img = self.block0(features, rgb, ws=[w, w, w], noise_mode=noise_mode)
        _, img = self.block1(x, img, ws=[w, w, w], noise_mode=noise_mode)
        return img
