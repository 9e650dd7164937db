"""Train the single-image tri-plane encoder and the shared decoder (with its semantic head).

Multi-view supervision on synthetic heads: the encoder sees one view; its tri-plane is
rendered at that view and at other views of the same head and compared with their exact
renders. Per step, ``batch`` heads x ``targets`` views (the input view among them), one
``patch x patch`` block of rays per view (centred on the head most of the time), so the
image losses include SSIM while the render cost stays a fraction of a full frame.

Losses (weights in :class:`EncoderTrainConfig`): L1 colour (head pixels weighted 1,
background 0.25) + SSIM on the composited patch; opacity vs. alpha (L1); depth L1 on head
pixels; semantic NLL with background decided by opacity; E_low's depth map and
foreground logit against the input view's exact depth and alpha. An optional perceptual
term (a user's LPIPS weights, by local path) plugs in through :mod:`engine.training.losses`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from engine.camera import rays
from engine.evaluation.recon import evaluate, heldout_views
from engine.training import common
from engine.training.data import MultiView, border_colour, load_multiview
from engine.triplane import presets
from engine.triplane.config import GeneratorConfig, RenderConfig, config_to_dict
from engine.triplane.decoder import PointDecoder, TriplaneDecoder
from engine.triplane.encoder import EncoderConfig, TriplaneEncoder
from engine.triplane.raw import RawImage, render_image, render_rays
from engine.triplane.semantics import label_map, semantic_nll

log = logging.getLogger(__name__)

LOG_EVERY = 25


@dataclass(frozen=True)
class EncoderTrainConfig:
    """Options of ``tricam train encoder`` (defaults: the shipped tiny run, ~50 min on 2 quiet CPU cores)."""

    data: Path
    """A ``tricam synth --views K`` dataset (K >= 2) at ``encoder.input_size``."""
    out: Path
    """Run directory: checkpoint, plots, grids, summary."""
    preset: str = "tiny"
    """Generator preset whose decoder and plane shape the encoder shares."""
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    steps: int = 4000
    batch: int = 4
    targets: int = 3
    """Views rendered per head per step, the input view first."""
    patch: int = 20
    render_resolution: int = 64
    lr: float = 1e-3
    seed: int = 0
    threads: int = 2
    device: str = "cpu"
    checkpoint_every: int = 200
    val_every: int = 500
    val_heads: int = 16
    val_seed: int = 90_001
    max_heads: int | None = None
    w_rgb: float = 1.0
    w_ssim: float = 0.2
    w_opacity: float = 0.3
    w_depth: float = 0.5
    w_semantic: float = 0.1
    w_depth_map: float = 0.5
    w_alpha_map: float = 0.2
    augment: bool = True
    perceptual: Path | None = None
    """Optional LPIPS weights (safetensors) by local path; see :mod:`engine.training.losses`."""
    w_perceptual: float = 0.5
    amp: bool = False
    """bf16 autocast for the forward pass (for GPUs; slower on this CPU)."""
    semantic_steps: int = 300
    """A last phase that tunes only the decoder's semantic head (everything else frozen)."""
    semantic_lr: float = 3e-3
    semantic_patch: int = 32


def render_config(gcfg: GeneratorConfig, resolution: int) -> RenderConfig:
    return dataclasses.replace(gcfg.render, resolution=resolution)


def augment(rgb: Tensor, cam: Tensor, maps: list[Tensor], rng: np.random.Generator) -> tuple[Tensor, Tensor, list[Tensor]]:
    """What a live face crop goes through: a shifted crop (exact: the intrinsics move with it),
    blur and sensor noise. Colours are left alone: the targets keep them."""
    n, _, s, _ = rgb.shape
    rgb, cam = rgb.clone(), cam.clone()
    maps = [m.clone() for m in maps]
    for i in range(n):
        if rng.random() < 0.5:
            dx, dy = (int(v) for v in rng.integers(-3, 4, size=2))
            p = 3
            for t in [rgb, *maps]:
                padded = F.pad(t[i: i + 1].float(), (p, p, p, p), mode="replicate")
                t[i] = padded[0, :, p - dy: p - dy + s, p - dx: p - dx + s].to(t.dtype)
            cam[i, 18] += dx / s  # cx
            cam[i, 21] += dy / s  # cy
        if rng.random() < 0.3:
            k = torch.tensor([1.0, 2.0, 1.0])
            k2 = (k[:, None] * k[None]) / 16
            rgb[i] = F.conv2d(F.pad(rgb[i: i + 1], (1, 1, 1, 1), mode="replicate"),
                              k2.expand(3, 1, 3, 3), groups=3)[0]
        if rng.random() < 0.5:
            sigma = float(rng.uniform(0.0, 0.03))
            rgb[i] = (rgb[i] + sigma * torch.randn_like(rgb[i])).clamp(0, 1)
    return rgb, cam, maps


def patch_indices(alpha: Tensor, patch: int, rng: np.random.Generator) -> Tensor:
    """``alpha (V, 1, S, S)`` -> flat pixel indices ``(V, patch^2)``: a block centred on the head 80% of the time."""
    v, _, s, _ = alpha.shape
    out = torch.empty(v, patch * patch, dtype=torch.long)
    ar = torch.arange(patch)
    for i in range(v):
        fg = torch.nonzero(alpha[i, 0] > 0.5)
        if len(fg) and rng.random() < 0.8:
            cy, cx = (int(c) for c in fg[int(rng.integers(len(fg)))])
        else:
            cy, cx = (int(c) for c in rng.integers(0, s, size=2))
        y0 = min(max(cy - patch // 2, 0), s - patch)
        x0 = min(max(cx - patch // 2, 0), s - patch)
        out[i] = ((y0 + ar)[:, None] * s + (x0 + ar)[None]).reshape(-1)
    return out


@dataclass(frozen=True)
class PatchRender:
    """One ``P x P`` block of rays per view, rendered and with its ground truth (all ``(V, C, P, P)``)."""

    pred: Tensor
    """Colour composited over the background guess, in [0, 1]."""
    gt: Tensor
    alpha: Tensor
    opacity: Tensor
    depth: Tensor
    depth_gt: Tensor
    semantics: Tensor
    labels: Tensor
    """``(V, P, P)`` integer classes."""


def render_patches(planes: Tensor, decoder: PointDecoder, render_cfg: RenderConfig, b: dict[str, Tensor], patch: int,
                   rng: np.random.Generator, bg: Tensor) -> PatchRender:
    """Render ``planes (V, 3, C, R, R)`` (one per view of the batch ``b``, views flattened) at a patch per view."""
    rgb, cam = b["rgb"], b["camera"]
    n, t, _, s, _ = rgb.shape
    flat_alpha = b["alpha"].reshape(n * t, 1, s, s)
    idx = patch_indices(flat_alpha.cpu(), patch, rng).to(rgb.device)  # (V, P*P)
    origins, dirs = rays(cam.reshape(n * t, 25), s)
    g3 = idx[..., None].expand(-1, -1, 3)
    out = render_rays(planes=planes, decoder=decoder, config=render_cfg,
                      origins=torch.gather(origins, 1, g3), directions=torch.gather(dirs, 1, g3))

    def gather(x: Tensor) -> Tensor:  # (V, C, S, S) -> (V, C, P, P)
        v, c = x.shape[:2]
        return torch.gather(x.reshape(v, c, s * s), 2, idx[:, None].expand(-1, c, -1)).reshape(v, c, patch, patch)

    def img(x: Tensor) -> Tensor:  # (V, P*P, C) -> (V, C, P, P)
        return x.permute(0, 2, 1).reshape(x.shape[0], -1, patch, patch)

    opacity = img(out.opacity)
    return PatchRender(
        pred=img(out.color) + (1 - opacity) * bg,
        gt=gather(rgb.reshape(n * t, 3, s, s)),
        alpha=gather(flat_alpha),
        opacity=opacity,
        depth=img(out.depth),
        depth_gt=gather(b["depth"].reshape(n * t, 1, s, s)),
        semantics=img(out.semantics),
        labels=gather(b["labels"].reshape(n * t, 1, s, s).float()).long()[:, 0],
    )


def patch_losses(pr: PatchRender) -> dict[str, Tensor]:
    """L1 (head pixels weighted 1, background 0.25) + SSIM, opacity vs alpha, depth on the head, semantic NLL."""
    from kornia.losses import ssim_loss

    fg = (pr.alpha > 0.5).float()
    return {
        "rgb": ((pr.pred - pr.gt).abs() * (pr.alpha + 0.25 * (1 - pr.alpha))).mean(),
        "ssim": ssim_loss(pr.pred.clamp(0, 1), pr.gt, 7),
        "opacity": (pr.opacity - pr.alpha).abs().mean(),
        "depth": ((pr.depth - pr.depth_gt).abs() * fg).sum() / fg.sum().clamp_min(1),
        "semantic": semantic_nll(pr.semantics, pr.opacity, pr.labels),
    }


class EncoderModel(torch.nn.Module):
    """Encoder + shared decoder, and how their tri-plane is rendered (raw, at any resolution)."""

    def __init__(self, encoder: TriplaneEncoder, decoder: TriplaneDecoder, render: RenderConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.render_cfg = render

    def reconstruct(self, rgb01: Tensor, camera: Tensor, targets: Tensor, resolution: int) -> RawImage:
        """Encode ``rgb01 (N,3,S,S)``; render each item at ``targets (N*k, 25)`` (k views per item)."""
        planes = self.encoder(image=rgb01 * 2 - 1, camera=camera).planes
        k = targets.shape[0] // planes.shape[0]
        planes = planes.repeat_interleave(k, dim=0)
        return render_image(planes=planes, decoder=self.decoder, config=self.render_cfg, camera=targets,
                            resolution=resolution)


def _losses(
    model: EncoderModel, b: dict[str, Tensor], cfg: EncoderTrainConfig, rng: np.random.Generator,
    perceptual: Callable[[Tensor, Tensor], Tensor] | None,
) -> dict[str, Tensor]:
    rgb, cam = b["rgb"], b["camera"]  # (B, T, ...)
    n, t, _, s, _ = rgb.shape
    inp, cam_in = rgb[:, 0], cam[:, 0]
    aux_maps = [b["depth"][:, 0], b["alpha"][:, 0]]
    if cfg.augment:
        inp_aug, cam_aug, aux_maps = augment(inp, cam_in, aux_maps, rng)
    else:
        inp_aug, cam_aug = inp, cam_in
    enc = model.encoder(image=inp_aug * 2 - 1, camera=cam_aug)
    depth_gt_in, alpha_in = aux_maps
    fg_in = (alpha_in > 0.5).float()
    losses: dict[str, Tensor] = {}
    losses["depth_map"] = ((enc.depth - depth_gt_in).abs() * fg_in).sum() / fg_in.sum().clamp_min(1)
    losses["alpha_map"] = F.binary_cross_entropy_with_logits(enc.alpha_logit, alpha_in)

    bg = border_colour(inp).repeat_interleave(t, dim=0)
    pr = render_patches(enc.planes.repeat_interleave(t, dim=0), model.decoder, model.render_cfg, b, cfg.patch, rng, bg)
    losses.update(patch_losses(pr))
    if perceptual is not None:
        losses["perceptual"] = perceptual(pr.pred, pr.gt).mean()
    return losses


def _semantic_loss(model: EncoderModel, b: dict[str, Tensor], cfg: EncoderTrainConfig,
                   rng: np.random.Generator) -> dict[str, Tensor]:
    """Semantic NLL on larger patches with the tri-plane, density and colour fixed."""
    rgb, cam = b["rgb"], b["camera"]
    n, t, _, s, _ = rgb.shape
    with torch.no_grad():
        planes = model.encoder(image=rgb[:, 0] * 2 - 1, camera=cam[:, 0]).planes.repeat_interleave(t, dim=0)
    pr = render_patches(planes, model.decoder, model.render_cfg, b, min(cfg.semantic_patch, s), rng,
                        torch.zeros(n * t, 3, 1, 1, device=rgb.device))
    return {"semantic_tune": semantic_nll(pr.semantics, pr.opacity.detach(), pr.labels)}


def _weighted(losses: dict[str, Tensor], cfg: EncoderTrainConfig) -> Tensor:
    w = {"rgb": cfg.w_rgb, "ssim": cfg.w_ssim, "opacity": cfg.w_opacity, "depth": cfg.w_depth,
         "semantic": cfg.w_semantic, "depth_map": cfg.w_depth_map, "alpha_map": cfg.w_alpha_map,
         "perceptual": cfg.w_perceptual, "semantic_tune": 1.0}
    return sum((w[k] * v for k, v in losses.items()), torch.zeros(()))


def build_model(cfg: EncoderTrainConfig) -> tuple[EncoderModel, GeneratorConfig]:
    gcfg = presets.preset(cfg.preset)
    ecfg = cfg.encoder
    if (ecfg.plane_resolution, ecfg.plane_channels) != (gcfg.synthesis.plane_resolution, gcfg.synthesis.plane_channels):
        raise common.TrainingError(
            f"encoder planes {ecfg.plane_channels}x{ecfg.plane_resolution}^2 must match the {cfg.preset} generator's "
            f"{gcfg.synthesis.plane_channels}x{gcfg.synthesis.plane_resolution}^2")
    decoder = TriplaneDecoder(gcfg.decoder, plane_channels=gcfg.synthesis.plane_channels)
    return EncoderModel(TriplaneEncoder(ecfg), decoder, render_config(gcfg, cfg.render_resolution)), gcfg


def sample_grid(model: EncoderModel, val: MultiView, path: Path, heads: int = 6) -> None:
    """Rows: input | recon at input | true -30 | recon -30 | true +30 | recon +30 | true labels | labels."""
    from engine.synth.dataset import CLASS_COLORS

    model.eval()
    n = min(heads, val.heads)
    dev = next(model.parameters()).device
    b = {k: v.to(dev) for k, v in val.batch(np.arange(n), np.tile(np.arange(val.views), (n, 1))).items()}
    with torch.no_grad():
        out = model.reconstruct(b["rgb"][:, 0], b["camera"][:, 0], b["camera"].reshape(-1, 25), val.size)
    bg = border_colour(b["rgb"][:, 0]).repeat_interleave(val.views, dim=0)
    pred = out.composite(bg).reshape(n, val.views, 3, val.size, val.size)
    labs = label_map(out.semantics, out.opacity).reshape(n, val.views, val.size, val.size)
    rows = []
    for i in range(n):
        row = []
        for v in range(val.views):
            row += [common.to_uint8(b["rgb"][i, v]), common.to_uint8(pred[i, v])]
        row += [CLASS_COLORS[b["labels"][i, 0].cpu().numpy()], CLASS_COLORS[labs[i, 0].cpu().numpy()]]
        rows.append(row)
    common.save_grid(rows, path)
    model.train()


def validate(model: EncoderModel, val: MultiView) -> dict[str, float]:
    model.eval()
    res = evaluate(model.reconstruct, val, batch=8, device=next(model.parameters()).device)
    model.train()
    return {f"val_{k}": float(res[k]) for k in ("psnr_input", "psnr_side", "semantic_miou")}


def train_encoder(cfg: EncoderTrainConfig, *, progress: bool = True, stop_at: int | None = None) -> dict[str, Any]:
    """Run (or resume) a training run; returns the summary also written to ``out/summary.json``."""
    common.setup_cpu(cfg.threads)
    rng = common.seed_everything(cfg.seed)
    model, gcfg = build_model(cfg)
    model.to(cfg.device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    modules = {"encoder": model.encoder, "decoder": model.decoder}
    step, history, wall = 0, [], 0.0
    if common.has_checkpoint(out):
        state = common.load_checkpoint(out, modules=modules, optimizer=opt, rng=rng)
        step, history, wall = state["step"], state["history"], float(state["extra"].get("wall_s", 0.0))
        log.info("resuming %s at step %d", out, step)
    data = load_multiview(cfg.data, max_heads=cfg.max_heads)
    if data.size != cfg.encoder.input_size:
        raise common.TrainingError(f"{cfg.data}: images are {data.size}^2, the encoder reads {cfg.encoder.input_size}^2")
    if data.views < cfg.targets:
        raise common.TrainingError(f"{cfg.data}: {data.views} views per head, need >= targets ({cfg.targets})")
    val = heldout_views(cfg.val_seed, cfg.val_heads, data.size)
    perceptual = None
    if cfg.perceptual is not None:
        from engine.training.losses import load_lpips

        perceptual = load_lpips(cfg.perceptual)
    log.info("encoder %d params, decoder %d params; %d heads x %d views of %d^2",
             sum(p.numel() for p in model.encoder.parameters()), sum(p.numel() for p in model.decoder.parameters()),
             data.heads, data.views, data.size)

    def save() -> None:
        common.save_checkpoint(out, modules=modules, optimizer=opt, rng=rng, step=step, history=history,
                               extra={"wall_s": wall, "config": _jsonable(cfg)})
        common.plot_history(history, out / "losses.png", "encoder")

    from tqdm import tqdm

    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc="encoder", dynamic_ncols=True)
    running: dict[str, float] = {}
    skipped = 0
    model.train()
    total_steps = cfg.steps + cfg.semantic_steps
    bar.total = total_steps
    while step < total_steps:
        if stop_at is not None and step >= stop_at:  # an interruption, for tests of resume
            save()
            bar.close()
            return {"steps": step, "stopped": True}
        t0 = time.perf_counter()
        semantic_phase = step >= cfg.steps
        if semantic_phase:
            for name, prm in model.named_parameters():
                prm.requires_grad_(name.startswith("decoder.semantic."))
        lr = cfg.semantic_lr if semantic_phase else common.cosine_lr(step, cfg.steps, cfg.lr)
        for g in opt.param_groups:
            g["lr"] = lr
        heads = rng.choice(data.heads, size=cfg.batch, replace=False)
        views = np.stack([rng.permutation(data.views)[: cfg.targets] for _ in range(cfg.batch)])
        batch = {k: v.to(cfg.device) for k, v in data.batch(heads, views).items()}
        with torch.autocast(device_type=torch.device(cfg.device).type, dtype=torch.bfloat16, enabled=cfg.amp):
            if semantic_phase:
                losses = _semantic_loss(model, batch, cfg, rng)
            else:
                losses = _losses(model, batch, cfg, rng, perceptual)
        total = _weighted(losses, cfg)
        opt.zero_grad(set_to_none=True)
        if not torch.isfinite(total):
            # A non-finite loss would turn every weight into NaN; skip the batch and say so.
            log.warning("step %d: non-finite loss %s (%s); batch skipped", step, float(total),
                        {k: float(v) for k, v in losses.items()})
            skipped += 1
            step += 1
            bar.update(1)
            continue
        total.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        if torch.isfinite(norm):
            opt.step()
        else:
            log.warning("step %d: non-finite gradient; update skipped", step)
            skipped += 1
        step += 1
        wall += time.perf_counter() - t0
        for k, v in {**losses, "total": total}.items():
            running[k] = running.get(k, 0.0) + float(v.detach())
        bar.update(1)
        if step % LOG_EVERY == 0 or step in (cfg.steps, total_steps):
            count = (step - 1) % LOG_EVERY + 1
            rec = {"step": step, **{k: v / count for k, v in running.items()}}
            running.clear()
            history.append(rec)
            bar.set_postfix(loss=f"{rec['total']:.4f}")
        if step % cfg.val_every == 0 or step in (cfg.steps, total_steps):
            history.append({"step": step, **validate(model, val)})
            sample_grid(model, val, out / "samples.png")
            log.info("step %d: %s", step, {k: round(v, 4) for k, v in history[-1].items()})
        if step % cfg.checkpoint_every == 0 or step in (cfg.steps, total_steps):
            save()
    bar.close()
    final = validate(model, val)
    summary = {
        "trainer": "tricam train encoder",
        "steps": step,
        "wall_s": round(wall, 1),
        "seconds_per_step": round(wall / max(step, 1), 3),
        "skipped_non_finite_steps": skipped,
        "final_losses": next((h for h in reversed(history) if "total" in h), {}),
        "validation": final,
        "data": {"path": str(cfg.data), "heads": data.heads, "views": data.views, "size": data.size},
        "config": _jsonable(cfg),
        "generator_config": config_to_dict(gcfg),
    }
    common.write_json(out / "summary.json", summary)
    return summary


def _jsonable(cfg: Any) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}
