"""Class probabilities from marched semantic logits, with empty space decided by opacity.

The renderer marches logits with the same weights as colour, so a pixel's semantic
vector sums to its opacity times a weighted mean logit. Class 0 (background) is *not* a
logit: its probability is the transparency ``1 - opacity``; the other classes share the
opacity by a softmax of the opacity-normalised logits. An empty ray is therefore
background with certainty instead of a tie of zero logits. The decoder's logit 0 is
unused (kept so the head's shape stays K = number of classes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

BACKGROUND = 0


def semantic_probs(semantics: Tensor, opacity: Tensor, *, eps: float = 1e-4) -> Tensor:
    """``semantics (N, K, H, W)`` marched logits, ``opacity (N, 1, H, W)`` -> probabilities ``(N, K, H, W)``."""
    if semantics.ndim != 4 or opacity.shape != (semantics.shape[0], 1, *semantics.shape[2:]):
        raise ValueError(f"need semantics (N, K, H, W) and opacity (N, 1, H, W), got "
                         f"{tuple(semantics.shape)} and {tuple(opacity.shape)}")
    op = opacity.clamp(0.0, 1.0)
    mean_logits = semantics[:, 1:] / opacity.clamp_min(eps)
    fg = torch.softmax(mean_logits, dim=1) * op
    return torch.cat([1.0 - op, fg], dim=1)


def semantic_probs_at(semantics: Tensor, opacity: Tensor, size: int) -> Tensor:
    """Probabilities resized (bilinear) to ``size x size``: the masks at output resolution."""
    probs = semantic_probs(semantics, opacity)
    if probs.shape[-1] == size and probs.shape[-2] == size:
        return probs
    return F.interpolate(probs, size=(size, size), mode="bilinear", align_corners=False)


def semantic_nll(semantics: Tensor, opacity: Tensor, labels: Tensor, *, eps: float = 1e-6) -> Tensor:
    """Mean negative log-likelihood of integer ``labels (N, H, W)`` under :func:`semantic_probs`."""
    probs = semantic_probs(semantics, opacity)
    p = probs.gather(1, labels[:, None].long()).squeeze(1)
    return -(p + eps).log().mean()


def label_map(semantics: Tensor, opacity: Tensor) -> Tensor:
    """``(N, H, W)`` argmax class per pixel."""
    return semantic_probs(semantics, opacity).argmax(dim=1)


def mean_iou(pred: Tensor, target: Tensor, num_classes: int) -> tuple[float, dict[int, float]]:
    """Mean IoU over the classes present in ``target`` or ``pred`` (background included)."""
    ious: dict[int, float] = {}
    for c in range(num_classes):
        p, t = pred == c, target == c
        union = (p | t).sum().item()
        if union == 0:
            continue
        ious[c] = float((p & t).sum().item() / union)
    return (sum(ious.values()) / max(len(ious), 1)), ious
