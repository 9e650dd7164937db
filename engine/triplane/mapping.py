"""Mapping network: (z, camera label) -> w, broadcast to num_ws (REFERENCE-FACTS §7)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from engine.triplane.config import MappingConfig
from engine.triplane.layers import FullyConnected, normalize_2nd_moment


class MappingNetwork(nn.Module):
    """z (and c) -> ws ``(N, num_ws, w_dim)``.

    c is embedded by an FC (c_dim -> w_dim); z and embed(c) are each normalised by their
    second moment, concatenated and passed through ``num_layers`` lrelu FCs with lr_mul
    0.01. The running mean ``w_avg`` is a buffer updated only by :meth:`update_w_avg`
    (called by a trainer), never inside ``forward``.
    """

    w_avg: Tensor

    def __init__(self, config: MappingConfig, *, num_ws: int) -> None:
        super().__init__()
        self.config = config
        self.num_ws = num_ws
        self.embed: FullyConnected | None = None
        in_features = config.z_dim
        if config.c_dim > 0:
            self.embed = FullyConnected(config.c_dim, config.w_dim)
            in_features += config.w_dim
        features = [in_features] + [config.w_dim] * config.num_layers
        self.layers = nn.ModuleList(
            FullyConnected(a, b, activation="lrelu", lr_multiplier=config.lr_multiplier)
            for a, b in zip(features[:-1], features[1:], strict=True)
        )
        self.register_buffer("w_avg", torch.zeros(config.w_dim))

    def forward(
        self,
        *,
        z: Tensor,
        c: Tensor | None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> Tensor:
        """``z (N, z_dim)``, ``c (N, 25)`` -> ws ``(N, num_ws, w_dim)``.

        Truncation: ``w <- w_avg + psi (w - w_avg)`` on the first ``truncation_cutoff`` ws
        (all when None).
        """
        if z.ndim != 2 or z.shape[1] != self.config.z_dim:
            raise ValueError(f"z must be (N, {self.config.z_dim}), got {tuple(z.shape)}")
        x = normalize_2nd_moment(z)
        if self.embed is not None:
            if c is None or c.shape != (z.shape[0], self.config.c_dim):
                got = None if c is None else tuple(c.shape)
                raise ValueError(f"c must be (N, {self.config.c_dim}), got {got}")
            x = torch.cat([x, normalize_2nd_moment(self.embed(c))], dim=1)
        for layer in self.layers:
            x = layer(x)
        ws = x[:, None, :].expand(-1, self.num_ws, -1)
        if truncation_psi != 1.0:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            head = self.w_avg + truncation_psi * (ws[:, :cutoff] - self.w_avg)
            ws = torch.cat([head, ws[:, cutoff:]], dim=1)
        return ws

    @torch.no_grad()
    def update_w_avg(self, ws: Tensor) -> None:
        """EMA update of ``w_avg`` from a training batch's ``ws (N, num_ws, w_dim)``."""
        self.w_avg.copy_(ws[:, 0].mean(dim=0).lerp(self.w_avg, self.config.w_avg_beta))
