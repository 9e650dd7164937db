"""StyleGAN2 'skip' backbone that paints the tri-plane (REFERENCE-FACTS §8).

Blocks run 4 -> plane_resolution, doubling; block channels are
min(channel_base // res, channel_max). The 3*C-channel output is viewed as
``(N, 3, C, R, R)``: channel c goes to plane c // C, feature c % C.

w indexing: the 4x4 block reads ws[0] (conv1) and ws[1] (toRGB); block k >= 1 reads
ws[2k-1] (conv0), ws[2k] (conv1), ws[2k+1] (toRGB) — a block's toRGB shares its w with
the next block's conv0. num_ws = 2 * num_blocks (14 for 4..256).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from engine.triplane.config import SynthesisConfig
from engine.triplane.layers import NoiseMode, SynthesisBlock
from engine.triplane.stylespace import Component, LayerKind


class SynthesisNetwork(nn.Module):
    """ws ``(N, num_ws, w_dim)`` or per-layer S codes -> planes ``(N, 3, C, R, R)``."""

    def __init__(self, config: SynthesisConfig, *, w_dim: int) -> None:
        super().__init__()
        self.config = config
        self.w_dim = w_dim
        log2 = int(math.log2(config.plane_resolution))
        self.resolutions = [2**i for i in range(2, log2 + 1)]
        img_channels = 3 * config.plane_channels
        blocks = []
        prev = 0
        for res in self.resolutions:
            ch = min(config.channel_base // res, config.channel_max)
            blocks.append(
                SynthesisBlock(
                    prev,
                    ch,
                    w_dim=w_dim,
                    resolution=res,
                    img_channels=img_channels,
                    conv_clamp=config.conv_clamp,
                )
            )
            prev = ch
        self.blocks = nn.ModuleList(blocks)
        self.num_ws = 2 * len(self.resolutions)

    def w_indices(self) -> list[list[int]]:
        """For each block, the w index of each of its modulated layers (conv0?, conv1, torgb)."""
        out = [[0, 1]]
        for k in range(1, len(self.resolutions)):
            out.append([2 * k - 1, 2 * k, 2 * k + 1])
        return out

    def stylespace_rows(self) -> list[tuple[str, Component, LayerKind, int, int, int]]:
        """S-table rows ``(name, component, kind, w_index, resolution, size)`` in consumption order."""
        rows: list[tuple[str, Component, LayerKind, int, int, int]] = []
        for block, idx in zip(self.blocks, self.w_indices(), strict=True):
            assert isinstance(block, SynthesisBlock)
            for (name, layer), wi in zip(block.modulated_layers(), idx, strict=True):
                kind: LayerKind = "torgb" if name == "torgb" else "conv"
                rows.append(
                    (
                        f"synthesis.b{block.resolution}.{name}",
                        "synthesis",
                        kind,
                        wi,
                        block.resolution,
                        layer.s_dim,
                    )
                )
        return rows

    def _planes(self, img: Tensor) -> Tensor:
        n, _, r, _ = img.shape
        return img.reshape(n, 3, self.config.plane_channels, r, r)

    def forward(self, *, ws: Tensor, noise_mode: NoiseMode = "const") -> Tensor:
        """``ws (N, num_ws, w_dim)`` -> planes ``(N, 3, C, R, R)``; each layer computes its own S codes."""
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must be (N, {self.num_ws}, {self.w_dim}), got {tuple(ws.shape)}")
        x: Tensor | None = None
        img: Tensor | None = None
        for block, idx in zip(self.blocks, self.w_indices(), strict=True):
            assert isinstance(block, SynthesisBlock)
            x, img = block(x, img, ws=[ws[:, i] for i in idx], noise_mode=noise_mode)
        assert img is not None
        return self._planes(img)

    def forward_s(self, *, s_codes: list[Tensor], noise_mode: NoiseMode = "const") -> Tensor:
        """Per-layer S codes (S-table order, each ``(N, size_i)``) -> planes ``(N, 3, C, R, R)``."""
        it = iter(s_codes)
        x: Tensor | None = None
        img: Tensor | None = None
        batch = s_codes[0].shape[0]
        for block in self.blocks:
            assert isinstance(block, SynthesisBlock)
            block_s_codes = [next(it) for _ in block.modulated_layers()]
            x, img = block.forward_s(x, img, s_codes=block_s_codes, noise_mode=noise_mode, batch=batch)
        assert img is not None
        return self._planes(img)
