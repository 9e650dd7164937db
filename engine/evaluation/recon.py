"""``tricam eval recon``: single-image reconstruction against exact synthetic ground truth.

For every held-out head, the encoder sees one view (64^2 here) and the render of its
tri-plane is compared with the exact render of the same head at the input view and at
+-30 degrees of yaw from it (same pitch). Figures:

* ``psnr_*`` / ``ssim_*`` on the head: over pixels where the ground truth's alpha > 0.5
  (SSIM: the 11x11 SSIM map averaged over those pixels); ``*_full``: the whole image.
* The model's background is one colour, the mean of the input's border (the synthetic
  background is an environment at infinity that a bounded tri-plane cannot hold), so the
  ``*_full`` figures include an error the head figures exclude by construction.
* ``depth_l1``: mean |depth - true depth| (Euclidean along the ray, world units; the head is
  about 0.55 wide) over ground-truth head pixels, all three views.
* ``semantic_miou``: the class map (argmax of :func:`engine.triplane.semantics.semantic_probs`)
  against the true label map over every pixel of all three views, background included; IoU
  per class over the whole set, then the mean over classes present.

PSNR and SSIM are averaged per image, then over heads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from engine.synth import params as P
from engine.training.data import MultiView, border_colour, load_multiview, render_views
from engine.triplane.raw import RawImage
from engine.triplane.semantics import label_map

log = logging.getLogger(__name__)

EVAL_SIZE = 64
SIDE_YAW = 30.0

Reconstructor = Callable[[Tensor, Tensor, Tensor, int], RawImage]
"""(input rgb01 (N,3,S,S), input camera (N,25), target cameras (N,25), resolution) -> render."""


def heldout_views(seed: int, count: int, size: int = EVAL_SIZE) -> MultiView:
    """``count`` heads from ``seed``: view 0 from the pose prior, views 1-2 at its yaw -+30 deg."""
    prior = P.Prior()
    heads = [P.sample_head(seed, i, prior) for i in range(count)]
    poses = []
    for i in range(count):
        p0 = P.sample_views(seed, i, 1, prior)[0]
        poses.append([p0, P.Pose(p0.yaw_deg - SIDE_YAW, p0.pitch_deg, p0.roll_deg),
                      P.Pose(p0.yaw_deg + SIDE_YAW, p0.pitch_deg, p0.roll_deg)])
    return render_views(heads, poses, size)


def psnr(a: Tensor, b: Tensor, mask: Tensor | None = None) -> Tensor:
    """Per-image PSNR (dB) of ``(N, 3, H, W)`` in [0, 1], optionally over ``mask (N, 1, H, W)``."""
    se = (a - b).pow(2).mean(dim=1, keepdim=True)
    if mask is None:
        mse = se.flatten(1).mean(dim=1)
    else:
        mse = (se * mask).flatten(1).sum(dim=1) / mask.flatten(1).sum(dim=1).clamp_min(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def ssim(a: Tensor, b: Tensor, mask: Tensor | None = None, window: int = 11) -> Tensor:
    """Per-image SSIM (kornia's map, Gaussian 11x11), mean over ``mask`` pixels if given."""
    from kornia.metrics import ssim as ssim_map

    m = ssim_map(a, b, window, max_val=1.0).mean(dim=1, keepdim=True)
    if mask is None:
        return m.flatten(1).mean(dim=1)
    return (m * mask).flatten(1).sum(dim=1) / mask.flatten(1).sum(dim=1).clamp_min(1)


@dataclass
class _Acc:
    values: dict[str, list[float]]
    confusion: np.ndarray

    def add(self, key: str, v: Tensor) -> None:
        self.values.setdefault(key, []).extend(float(x) for x in v.flatten())


def _batches(n: int, size: int) -> Iterator[slice]:
    for s in range(0, n, size):
        yield slice(s, min(n, s + size))


def evaluate(
    reconstruct: Reconstructor,
    data: MultiView,
    *,
    batch: int = 8,
    num_classes: int = P.NUM_CLASSES,
    progress: Callable[[int], None] | None = None,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Figures for ``data`` (view 0 is the input; every other view is a 'side' view).

    ``reconstruct`` runs on ``device`` (default: where the data is); figures are computed on the CPU.
    """
    acc = _Acc({}, np.zeros((num_classes, num_classes), np.int64))
    for sl in _batches(data.heads, batch):
        idx = np.arange(sl.start, sl.stop)
        views = np.tile(np.arange(data.views), (len(idx), 1))
        b = data.batch(idx, views)
        rgb, cam = b["rgb"], b["camera"]
        n, k = rgb.shape[:2]
        size = int(rgb.shape[-1])
        dev = torch.device(device) if device is not None else rgb.device
        with torch.no_grad():
            raw = reconstruct(rgb[:, 0].to(dev), cam[:, 0].to(dev), cam.reshape(n * k, 25).to(dev), size)
        out = RawImage(color=raw.color.float().cpu(), opacity=raw.opacity.float().cpu(), depth=raw.depth.float().cpu(),
                       semantics=raw.semantics.float().cpu())
        bg = border_colour(rgb[:, 0]).repeat_interleave(k, dim=0)
        pred = out.composite(bg).clamp(0, 1)
        gt = rgb.reshape(n * k, 3, size, size)
        mask = (b["alpha"].reshape(n * k, 1, size, size) > 0.5).float()
        which = np.tile(np.array(["input"] + ["side"] * (k - 1)), n)
        p_head, p_full = psnr(pred, gt, mask), psnr(pred, gt)
        s_head, s_full = ssim(pred, gt, mask), ssim(pred, gt)
        for name in ("input", "side"):
            sel = torch.from_numpy(which == name)
            if sel.any():
                acc.add(f"psnr_{name}", p_head[sel])
                acc.add(f"ssim_{name}", s_head[sel])
                acc.add(f"psnr_{name}_full", p_full[sel])
                acc.add(f"ssim_{name}_full", s_full[sel])
        depth_gt = b["depth"].reshape(n * k, 1, size, size)
        derr = ((out.depth - depth_gt).abs() * mask).flatten(1).sum(1) / mask.flatten(1).sum(1).clamp_min(1)
        acc.add("depth_l1", derr)
        pred_lab = label_map(out.semantics, out.opacity).flatten().numpy()
        true_lab = b["labels"].reshape(-1).numpy()
        acc.confusion += np.bincount(true_lab * num_classes + pred_lab, minlength=num_classes**2).reshape(
            num_classes, num_classes)
        if progress is not None:
            progress(n)
    result: dict[str, Any] = {k: float(np.mean(v)) for k, v in sorted(acc.values.items())}
    conf = acc.confusion
    inter = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - np.diag(conf)
    names = [c.name.lower() for c in P.SemanticClass]
    per_class = {names[c]: float(inter[c] / union[c]) for c in range(num_classes) if union[c] > 0}
    result["semantic_miou"] = float(np.mean(list(per_class.values())))
    result["semantic_iou"] = per_class
    result["n_heads"] = data.heads
    result["n_images"] = data.heads * data.views
    return result


def eval_data(seed: int | None, count: int, data_dir: Path | None) -> MultiView:
    """Held-out data: rendered from ``seed``, or read from a ``tricam synth --views`` directory."""
    if data_dir is not None:
        mv = load_multiview(data_dir, max_heads=count)
        if mv.size != EVAL_SIZE:
            mv = _resize(mv, EVAL_SIZE)
        return mv
    if seed is None:
        raise ValueError("give --seed or --data")
    return heldout_views(seed, count)


def _resize(mv: MultiView, size: int) -> MultiView:
    """Area-resample a dataset of another size to ``size`` (labels: nearest)."""
    h, k = mv.heads, mv.views

    def area(x: Tensor) -> Tensor:
        flat = x.reshape(h * k, *x.shape[2:]).float()
        return F.interpolate(flat, size=(size, size), mode="area").reshape(h, k, x.shape[2], size, size)

    labels = F.interpolate(mv.labels.reshape(h * k, 1, *mv.labels.shape[2:]).float(), size=(size, size),
                           mode="nearest").reshape(h, k, size, size).to(torch.uint8)
    depth = F.interpolate(mv.depth.reshape(h * k, 1, *mv.depth.shape[3:]).float(), size=(size, size),
                          mode="nearest").reshape(h, k, 1, size, size).half()
    return MultiView(images=area(mv.images).round().clamp(0, 255).to(torch.uint8), depth=depth, labels=labels,
                     alpha=area(mv.alpha).round().clamp(0, 255).to(torch.uint8), cameras=mv.cameras,
                     records=mv.records)
