"""Multi-view synthetic heads in memory, for the trainers and the evaluation.

Reads a ``tricam synth --views K`` dataset (head-major: K consecutive views per head) or
renders one on the fly from a seed (:func:`render_views`), so the evaluation can make
held-out heads from any seed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from engine import camera
from engine.synth import params as P
from engine.synth.dataset import load_index, load_shard
from engine.synth.render import render

log = logging.getLogger(__name__)


@dataclass
class MultiView:
    """``H`` heads x ``K`` views, all at ``S x S``."""

    images: Tensor
    """``(H, K, 3, S, S)`` uint8."""
    depth: Tensor
    """``(H, K, 1, S, S)`` float16, Euclidean along the ray (background 4.0)."""
    labels: Tensor
    """``(H, K, S, S)`` uint8 semantic classes."""
    alpha: Tensor
    """``(H, K, 1, S, S)`` uint8, 255 = surface."""
    cameras: Tensor
    """``(H, K, 25)`` float32 EG3D labels."""
    records: list[dict[str, Any]]
    """Per head: the attribute record of its first view (``attributes``), caption, and poses."""

    @property
    def heads(self) -> int:
        return int(self.images.shape[0])

    @property
    def views(self) -> int:
        return int(self.images.shape[1])

    @property
    def size(self) -> int:
        return int(self.images.shape[-1])

    def batch(self, heads: np.ndarray, views: np.ndarray) -> dict[str, Tensor]:
        """Float tensors for ``heads (B,)`` x ``views (B, V)``: rgb in [0, 1], depth, alpha in [0, 1]."""
        h = torch.from_numpy(np.asarray(heads))[:, None].expand(-1, views.shape[1])
        v = torch.from_numpy(np.asarray(views))
        return {
            "rgb": self.images[h, v].float() / 255.0,
            "depth": self.depth[h, v].float(),
            "alpha": self.alpha[h, v].float() / 255.0,
            "labels": self.labels[h, v].long(),
            "camera": self.cameras[h, v],
        }


def load_multiview(directory: str | Path, *, max_heads: int | None = None) -> MultiView:
    """Load a ``tricam synth --views K`` dataset (views mode, K >= 2).

    Raises:
        ValueError: not a views dataset, or fewer than two views per head.
    """
    index = load_index(directory)
    if index.get("mode") != "views" or int(index.get("views", 1)) < 2:
        raise ValueError(f"{directory}: need a multi-view dataset (tricam synth --views K, K >= 2)")
    k = int(index["views"])
    parts: dict[str, list[np.ndarray]] = {}
    records: list[dict[str, Any]] = []
    for shard in index["shards"]:
        arrays, recs = load_shard(Path(directory) / shard["file"])
        for name, a in arrays.items():
            parts.setdefault(name, []).append(a)
        records.extend(recs)
        if max_heads is not None and len(records) >= max_heads * k:
            break
    arrays = {name: np.concatenate(v) for name, v in parts.items()}
    n = (len(records) // k) * k
    if max_heads is not None:
        n = min(n, max_heads * k)
    h = n // k
    for i in range(0, n, k):  # head-major order is what the trainers rely on
        if records[i]["view"] != 0 or records[i + k - 1]["head"] != records[i]["head"]:
            raise ValueError(f"{directory}: records are not head-major with {k} views per head")
    return MultiView(
        images=torch.from_numpy(arrays["images"][:n]).reshape(h, k, *arrays["images"].shape[1:]).permute(0, 1, 4, 2, 3),
        depth=torch.from_numpy(arrays["depth"][:n]).reshape(h, k, 1, *arrays["depth"].shape[1:]),
        labels=torch.from_numpy(arrays["labels"][:n]).reshape(h, k, *arrays["labels"].shape[1:]),
        alpha=torch.from_numpy(arrays["alpha"][:n]).reshape(h, k, 1, *arrays["alpha"].shape[1:]),
        cameras=torch.from_numpy(arrays["cameras"][:n]).reshape(h, k, 25),
        records=[_head_record(records[i: i + k]) for i in range(0, n, k)],
    )


def _head_record(recs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "attributes": recs[0]["attributes"],
        "caption": recs[0]["caption"],
        "poses": [r["pose"] for r in recs],
    }


def render_views(
    heads: list[P.HeadParams], poses: list[list[P.Pose]], size: int, *, supersample: int = 1
) -> MultiView:
    """Render every head at its poses (same number per head) into a :class:`MultiView`."""
    k = len(poses[0])
    if any(len(p) != k for p in poses) or len(poses) != len(heads):
        raise ValueError("every head needs the same number of poses")
    flat_heads = [h for h in heads for _ in range(k)]
    labels = np.stack([camera.orbit_label(p.yaw_deg, p.pitch_deg, p.roll_deg) for ps in poses for p in ps])
    out = render(flat_heads, torch.from_numpy(labels.astype(np.float32)), size, supersample, "cpu")
    n = len(heads)

    def hk(x: Tensor) -> Tensor:
        return x.reshape(n, k, *x.shape[1:])

    return MultiView(
        images=hk((out.rgb * 255 + 0.5).clamp(0, 255).to(torch.uint8)),
        depth=hk(out.depth.to(torch.float16)),
        labels=hk(out.label),
        alpha=hk((out.alpha * 255 + 0.5).to(torch.uint8)),
        cameras=hk(torch.from_numpy(labels.astype(np.float32))),
        records=[
            {"attributes": h.to_dict(), "caption": P.caption(h),
             "poses": [{"yaw_deg": p.yaw_deg, "pitch_deg": p.pitch_deg, "roll_deg": p.roll_deg} for p in ps]}
            for h, ps in zip(heads, poses, strict=True)
        ],
    )


def border_colour(rgb: Tensor, width: int = 2) -> Tensor:
    """``(N, 3, S, S)`` -> ``(N, 3, 1, 1)`` mean colour of the image border: the background guess."""
    top, bottom = rgb[..., :width, :], rgb[..., -width:, :]
    left, right = rgb[..., width:-width, :width], rgb[..., width:-width, -width:]
    parts = [t.flatten(2) for t in (top, bottom, left, right)]
    return torch.cat(parts, dim=2).mean(dim=2)[..., None, None]
