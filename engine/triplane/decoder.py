"""EG3D's OSG decoder plus a semantic head (REFERENCE-FACTS §5).

mean of the 3 plane features (C) -> FC C->hidden -> softplus -> FC hidden->1+F:
channel 0 is raw density (activated in the marcher), channels 1..F are
sigmoid(x)*1.002 - 0.001. The semantic head is a separate FC hidden->K on the same hidden
activation, producing raw logits; keeping it separate leaves the density/feature layers
shaped exactly like EG3D's, so its decoder weights load unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from engine.triplane.config import DecoderConfig
from engine.triplane.layers import FullyConnected


@dataclass(frozen=True)
class DecoderOutput:
    """Per-point decoder outputs for ``N`` batches of ``P`` points."""

    raw_density: Tensor
    """``(N, P, 1)`` pre-activation density."""
    features: Tensor
    """``(N, P, F)`` in (-0.001, 1.001); the first three are RGB."""
    semantics: Tensor
    """``(N, P, K)`` raw class logits."""


class PointDecoder(Protocol):
    """What the renderer needs from a decoder (so tests can pass analytic fields)."""

    def __call__(self, *, features: Tensor) -> DecoderOutput: ...


class TriplaneDecoder(nn.Module):
    """Plane features ``(N, 3, P, C)`` -> :class:`DecoderOutput`."""

    def __init__(self, config: DecoderConfig, *, plane_channels: int) -> None:
        super().__init__()
        self.config = config
        lr = config.lr_multiplier
        self.fc0 = FullyConnected(plane_channels, config.hidden, lr_multiplier=lr, activation="softplus")
        self.fc1 = FullyConnected(config.hidden, 1 + config.feature_channels, lr_multiplier=lr)
        self.semantic = FullyConnected(config.hidden, config.semantic_classes, lr_multiplier=lr)

    def forward(self, *, features: Tensor) -> DecoderOutput:
        if features.ndim != 4 or features.shape[1] != 3:
            raise ValueError(f"features must be (N, 3, P, C), got {tuple(features.shape)}")
        h = self.fc0(features.mean(dim=1))
        out = self.fc1(h)
        return DecoderOutput(
            raw_density=out[..., :1],
            features=torch.sigmoid(out[..., 1:]) * (1 + 2 * 0.001) - 0.001,
            semantics=self.semantic(h),
        )
