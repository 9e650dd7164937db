"""Synthetic-head attribute records as fixed-size vectors, and the embedding that turns them into z.

The tiny generator is trained with a *parameter-conditioned* mapping: z is a learned
embedding of the head's attribute record (:func:`attribute_vector`), so W and S are
organised by attributes a person can name (hair, skin, glasses, beard ...). New heads are
sampled by drawing records from the synthetic prior (:func:`sample_z`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from engine.synth import params as P

_SHAPE_FIELDS = tuple(P.Shape.__dataclass_fields__)
_NECKLINES = ("crew", "v")


def _onehot(value: str, options: Sequence[str]) -> list[float]:
    if value not in options:
        raise ValueError(f"{value!r} is not one of {list(options)}")
    return [1.0 if value == o else 0.0 for o in options]


def _rgb(c: Sequence[float]) -> list[float]:
    return [2 * float(x) - 1 for x in c]


def attribute_vector(head: P.HeadParams) -> np.ndarray:
    """``(ATTRIBUTE_DIM,)`` float32, each entry roughly in [-1, 1]."""
    s, e, h, b, g, sc = head.shape, head.expression, head.hair, head.beard, head.glasses, head.scene
    v: list[float] = [(getattr(s, f) - 1.0) * 5 for f in _SHAPE_FIELDS]
    v += [2 * head.skin_tone - 1, *_rgb(head.lip_rgb), *_rgb(head.brow_rgb)]
    v += [2 * e.smile - 1, 2 * e.mouth_open - 1, 2 * e.eye_open - 1, e.brow_raise]
    v += [*_rgb(head.eyes.iris_rgb), head.eyes.gaze_yaw / 20, head.eyes.gaze_pitch / 20]
    v += [*_onehot(h.style, P.HAIRSTYLES), *_rgb(h.rgb), 2 * h.length - 1, 2 * h.volume - 1]
    v += [*_onehot(b.style, P.BEARDS), *_rgb(b.rgb)]
    v += [*_onehot(g.kind, P.GLASSES), *_onehot(g.frame_shape, P.FRAME_SHAPES), *_rgb(g.frame_rgb)]
    v += [*_rgb(sc.clothes_rgb), *_onehot(sc.neckline, _NECKLINES)]
    v += [sc.light_azimuth / 45, sc.light_elevation / 45, 2 * sc.ambient - 1, *_rgb(sc.light_rgb)]
    return np.asarray(v, dtype=np.float32)


ATTRIBUTE_DIM = int(attribute_vector(P.HeadParams()).shape[0])


def attribute_batch(records: Sequence[Mapping[str, Any]]) -> Tensor:
    """Attribute dicts (``HeadParams.to_dict`` form) -> ``(N, ATTRIBUTE_DIM)``."""
    return torch.from_numpy(np.stack([attribute_vector(P.HeadParams.from_dict(r)) for r in records]))


class AttributeEmbedding(nn.Module):
    """Attribute vector -> z (two layers); the mapping then normalises z as StyleGAN does."""

    def __init__(self, z_dim: int, attribute_dim: int = ATTRIBUTE_DIM, hidden: int = 128) -> None:
        super().__init__()
        self.attribute_dim = attribute_dim
        self.net = nn.Sequential(nn.Linear(attribute_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, z_dim))

    def forward(self, attributes: Tensor) -> Tensor:
        if attributes.ndim != 2 or attributes.shape[1] != self.attribute_dim:
            raise ValueError(f"attributes must be (N, {self.attribute_dim}), got {tuple(attributes.shape)}")
        return self.net(attributes)


def sample_records(seed: int, count: int) -> list[P.HeadParams]:
    """``count`` heads from the synthetic prior (the generator's sampling distribution)."""
    prior = P.Prior()
    return [P.sample_head(seed, i, prior) for i in range(count)]


def sample_z(embedding: AttributeEmbedding, seed: int, count: int) -> Tensor:
    """z codes of heads drawn from the prior."""
    attrs = torch.from_numpy(np.stack([attribute_vector(h) for h in sample_records(seed, count)]))
    with torch.no_grad():
        return embedding(attrs)
