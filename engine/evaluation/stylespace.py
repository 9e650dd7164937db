"""Which S channels move which semantic classes: a per-channel sweep of the core's S space.

For ``heads`` heads sampled from the synthetic prior (attribute record -> z -> ws -> s), every
editable S channel (SAT3D's set: backbone conv channels) is pushed by ``strength`` times its
standard deviation over a larger sample of heads (``std_heads``), one channel at a time, and
the frontal raw render (premultiplied colour in [0, 1], opacity, semantic logits) is compared
with the unedited one:

* ``rgb_change[c]``: mean |delta colour| (over RGB, in [0, 1] units) over the pixels the
  *unedited* render assigns to class ``c`` (argmax of
  :func:`~engine.triplane.semantics.semantic_probs`), pooled over heads. Background pixels are
  a class too: change there means the silhouette moved.
* ``area_change[c]``: class ``c``'s share of all pixels after the edit minus before (signed).

A channel is attributed to the class with the largest ``rgb_change`` among the classes
present in the unedited renders. :func:`channel_report` returns a JSON-ready dict;
:func:`report_png` draws each class's strongest channel pushed both ways.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from engine.camera import orbit_label
from engine.synth.params import SemanticClass
from engine.training.attributes import attribute_vector, sample_records
from engine.training.common import save_grid, to_uint8
from engine.triplane.core import CoreModel
from engine.triplane.raw import RawImage
from engine.triplane.semantics import semantic_probs

log = logging.getLogger(__name__)

CLASS_NAMES = tuple(c.name.lower() for c in SemanticClass)
TOP_PER_CLASS = 5
STD_HEADS = 64
PNG_HEADS = 2


def _device(core: CoreModel) -> torch.device:
    return next(core.generator.parameters()).device


def prior_s_codes(core: CoreModel, *, seed: int, heads: int, std_heads: int = STD_HEADS) -> tuple[Tensor, Tensor]:
    """S codes ``s (heads, S)`` of the first ``heads`` prior heads of ``seed``, and the per-channel std ``(S,)``
    over the first ``max(heads, std_heads)`` of them."""
    count = max(heads, std_heads)
    attrs = torch.from_numpy(np.stack([attribute_vector(h) for h in sample_records(seed, count)]))
    with torch.no_grad():
        ws = core.ws_from_attributes(attrs.to(_device(core)))
        s_all = core.generator.affine(ws=ws)
    return s_all[:heads], s_all.std(dim=0)


def frontal_camera(n: int, device: torch.device) -> Tensor:
    return torch.as_tensor(orbit_label(0.0, 0.0), dtype=torch.float32, device=device)[None].expand(n, -1)


def render_s(core: CoreModel, s: Tensor, size: int) -> RawImage:
    """Frontal raw render of S vectors ``(N, S)`` at ``size^2``."""
    with torch.no_grad():
        planes = core.generator.synthesis_from_s(s=s)
        return core.render(planes, frontal_camera(s.shape[0], s.device), size)


def _edited(s: Tensor, channels: Sequence[int], delta: Tensor) -> Tensor:
    """``len(channels)`` copies of ``s (H, S)`` stacked channel-major, copy b with channel b moved by delta[b]."""
    h = s.shape[0]
    out = s.repeat(len(channels), 1)
    for b, ch in enumerate(channels):
        out[b * h : (b + 1) * h, ch] += delta[b]
    return out


def _class_stats(raw: RawImage, base_color: Tensor, base_onehot: Tensor, base_share: Tensor,
                 n_edits: int) -> tuple[Tensor, Tensor]:
    """Per edit: rgb change per class ``(B, K)`` (NaN where the class is absent) and area change ``(B, K)``."""
    heads, k = base_onehot.shape[0], base_onehot.shape[1]
    diff = (raw.color.float() - base_color.repeat(n_edits, 1, 1, 1)).abs().mean(dim=1)  # (B*H, R, R)
    diff = diff.reshape(n_edits, heads, 1, *diff.shape[-2:])
    region = base_onehot[None]  # (1, H, K, R, R)
    pix = region.sum(dim=(1, 3, 4))  # (1, K)
    rgb = (diff * region).sum(dim=(1, 3, 4)) / pix.clamp_min(1)
    rgb = torch.where(pix > 0, rgb, torch.full_like(rgb, float("nan")))
    labels = semantic_probs(raw.semantics.float(), raw.opacity.float()).argmax(dim=1)  # (B*H, R, R)
    counts = torch.nn.functional.one_hot(labels, k).reshape(n_edits, -1, k).float().mean(dim=1)  # (B, K)
    return rgb, counts - base_share[None]


def channel_report(
    core: CoreModel,
    *,
    heads: int = 8,
    seed: int = 0,
    size: int = 64,
    strength: float = 3.0,
    channels: Sequence[int] | None = None,
    std_heads: int = STD_HEADS,
    batch_items: int = 16,
    progress: bool = True,
) -> dict[str, Any]:
    """Push each editable S channel (or ``channels``) by ``strength`` std and measure what moves.

    Renders ``batch_items`` head copies per pass (``batch_items // heads`` channels at once).

    Returns:
        ``{"n_channels", "strength", "heads", "seed", "size", "std_heads",
        "per_class": {class: [{"channel", "layer", "layer_channel", "rgb_change", "area_change"}, ...
        (top 5 by rgb_change of the channels attributed to the class)]},
        "channels": [{"channel", "layer", "layer_channel", "class", "rgb_change", "area_change",
        "rgb_mean"}, ...]}`` where ``rgb_mean`` is the change over the whole image.

    Raises:
        ValueError: bad sizes or a channel outside S.
    """
    from tqdm import tqdm

    if heads < 1 or size < 1 or batch_items < 1:
        raise ValueError(f"heads, size and batch_items must be >= 1 (got {heads}, {size}, {batch_items})")
    table = core.generator.stylespace
    if channels is None:
        chans = [int(i) for i in table.editable_mask().nonzero().flatten().tolist()]
    else:
        chans = [int(i) for i in channels]
        bad = [i for i in chans if not 0 <= i < table.size]
        if bad:
            raise ValueError(f"S channel {bad[0]} out of range [0, {table.size})")
    s, std = prior_s_codes(core, seed=seed, heads=heads, std_heads=std_heads)
    base = render_s(core, s, size)
    k = base.semantics.shape[1]
    base_color = base.color.float()
    base_labels = semantic_probs(base.semantics.float(), base.opacity.float()).argmax(dim=1)
    base_onehot = torch.nn.functional.one_hot(base_labels, k).permute(0, 3, 1, 2).float()  # (H, K, R, R)
    base_share = base_onehot.mean(dim=(0, 2, 3))
    names = [CLASS_NAMES[c] if c < len(CLASS_NAMES) else f"class{c}" for c in range(k)]

    per_batch = max(1, batch_items // heads)
    rows: list[dict[str, Any]] = []
    with tqdm(total=len(chans), unit="ch", desc="S channels", disable=not progress) as bar:
        for start in range(0, len(chans), per_batch):
            group = chans[start : start + per_batch]
            delta = strength * std[group]
            raw = render_s(core, _edited(s, group, delta), size)
            rgb, area = _class_stats(raw, base_color, base_onehot, base_share, len(group))
            whole = (raw.color.float() - base_color.repeat(len(group), 1, 1, 1)).abs().reshape(len(group), -1).mean(1)
            for b, ch in enumerate(group):
                sl, within = table.locate(ch)
                r = rgb[b]
                best = int(torch.nan_to_num(r, nan=-1.0).argmax())
                rows.append({
                    "channel": ch, "layer": sl.name, "layer_channel": within, "class": names[best],
                    "rgb_change": float(r[best]), "area_change": float(area[b, best]), "rgb_mean": float(whole[b]),
                })
            bar.update(len(group))

    per_class: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        mine = sorted((r for r in rows if r["class"] == name), key=lambda r: -r["rgb_change"])[:TOP_PER_CLASS]
        if mine:
            per_class[name] = [{key: r[key] for key in ("channel", "layer", "layer_channel", "rgb_change",
                                                          "area_change")} for r in mine]
    return {
        "n_channels": len(chans), "strength": strength, "heads": heads, "seed": seed, "size": size,
        "std_heads": std_heads, "per_class": per_class, "channels": rows,
    }


def _label_tile(text: str, size: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(im)
    words = text.split("\n")
    for i, w in enumerate(words):
        draw.text((2, 2 + 11 * i), w, fill=(0, 0, 0))
    return np.asarray(im)


def report_png(core: CoreModel, report: dict[str, Any], path: Path, *, heads: int = PNG_HEADS) -> None:
    """One row per class with channels: a label, then for each of ``heads`` heads the unedited frontal
    render and the class's top channel pushed by +strength and -strength std (over white)."""
    size = int(report["size"])
    strength = float(report["strength"])
    s, std = prior_s_codes(
        core, seed=int(report["seed"]), heads=heads, std_heads=int(report.get("std_heads", STD_HEADS))
    )
    base = render_s(core, s, size)
    white = torch.ones(1, 3, 1, 1, device=s.device)
    rows: list[list[np.ndarray]] = []
    for name, entries in report["per_class"].items():
        if not entries:
            continue
        ch = int(entries[0]["channel"])
        delta = torch.tensor([strength, -strength], device=s.device) * std[ch]
        pushed = render_s(core, _edited(s, [ch, ch], delta), size).composite(white)  # (+ copies, then - copies)
        base_rgb = base.composite(white)
        row = [_label_tile(f"{name}\n{entries[0]['layer'].removeprefix('synthesis.')}\n#{ch}", size)]
        for h in range(heads):
            row += [to_uint8(base_rgb[h]), to_uint8(pushed[h]), to_uint8(pushed[heads + h])]
        rows.append(row)
    if not rows:
        rows = [[_label_tile("no channels", size)]]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_grid(rows, path, scale=2 if size >= 64 else 4)

