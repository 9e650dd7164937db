"""Train the tri-plane generator on synthetic heads, with the encoder's decoder shared and frozen.

Objective: multi-view reconstruction with a parameter-conditioned mapping. Each head's
attribute record is embedded into z (:mod:`engine.training.attributes`); the mapping,
conditioned on the fixed frontal camera, gives W; the backbone paints a tri-plane; the
*shared* decoder (trained with the encoder, frozen here) renders it. Losses per step:

* raw render of a patch of rays per view at 64^2 against the exact render (L1 + SSIM,
  opacity vs. alpha, depth on the head, semantic NLL);
* the full 32^2 render super-resolved to 128^2, area-downsampled to the data's 64^2 (L1), so
  the super-resolution learns too;
* tri-plane L1 to the frozen encoder's tri-plane of the same head (3DPE's L_3D tri-plane
  term): it puts generator and encoder in one tri-plane space and speeds learning up.

A W encoder (image -> W+) learns alongside by regression onto the generator's W of the
shown head, so a photo can enter S space (:mod:`engine.training.inversion` refines it).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from engine.training import common
from engine.training.attributes import AttributeEmbedding, attribute_batch, attribute_vector, sample_records
from engine.training.data import MultiView, border_colour, load_multiview
from engine.training.encoder import (
    EncoderModel,
    EncoderTrainConfig,
    build_model,
    patch_losses,
    render_patches,
)
from engine.triplane import presets
from engine.triplane.config import config_from_dict, config_to_dict
from engine.triplane.encoder import WEncoder
from engine.triplane.generator import TriplaneGenerator, frontal_conditioning
from engine.triplane.raw import render_image

log = logging.getLogger(__name__)

LOG_EVERY = 25


@dataclass(frozen=True)
class GeneratorTrainConfig:
    """Options of ``tricam train generator`` (defaults: the shipped tiny run, ~35 min on 2 CPU cores)."""

    data: Path
    out: Path
    encoder_run: Path
    """A ``tricam train encoder`` run directory: its decoder is shared (frozen), its encoder is the tri-plane teacher."""
    preset: str = "tiny"
    steps: int = 2000
    batch: int = 4
    views: int = 2
    patch: int = 20
    lr: float = 2e-3
    seed: int = 0
    threads: int = 2
    device: str = "cpu"
    checkpoint_every: int = 200
    val_every: int = 500
    max_heads: int | None = None
    val_heads: int = 12
    w_rgb: float = 1.0
    w_ssim: float = 0.2
    w_opacity: float = 0.3
    w_depth: float = 0.5
    w_semantic: float = 0.1
    w_sr: float = 0.5
    w_planes: float = 0.5
    w_wcode: float = 1.0
    amp: bool = False
    """bf16 autocast for the forward pass (for GPUs; slower on this CPU)."""


class GeneratorModel(torch.nn.Module):
    def __init__(self, generator: TriplaneGenerator, embedding: AttributeEmbedding, w_encoder: WEncoder) -> None:
        super().__init__()
        self.generator = generator
        self.embedding = embedding
        self.w_encoder = w_encoder

    def ws_for(self, attributes: Tensor) -> Tensor:
        z = self.embedding(attributes)
        c = frontal_conditioning(z.shape[0], device=z.device, dtype=z.dtype)
        return self.generator.map(z=z, c=c)


def load_encoder_run(run: Path, preset: str) -> EncoderModel:
    """The encoder and decoder of a finished (or checkpointed) encoder run."""
    if not common.has_checkpoint(run):
        raise common.TrainingError(f"{run}: no encoder checkpoint (run `tricam train encoder` first)")
    import json

    state = json.loads((run / common.CKPT_STATE).read_text())
    saved = state["extra"].get("config", {})
    from engine.triplane.encoder import EncoderConfig

    ecfg = config_from_dict(EncoderConfig, saved.get("encoder", {}))
    model, _ = build_model(EncoderTrainConfig(data=run, out=run, preset=preset, encoder=ecfg,
                                              render_resolution=int(saved.get("render_resolution", 64))))
    common.load_checkpoint(run, modules={"encoder": model.encoder, "decoder": model.decoder}, optimizer=None, rng=None)
    return model.eval()


def build(cfg: GeneratorTrainConfig) -> tuple[GeneratorModel, EncoderModel]:
    teacher = load_encoder_run(cfg.encoder_run, cfg.preset)
    gcfg = presets.preset(cfg.preset)
    generator = TriplaneGenerator(gcfg)
    generator.decoder.load_state_dict(teacher.decoder.state_dict())
    generator.decoder.requires_grad_(False)
    for p in teacher.parameters():
        p.requires_grad_(False)
    model = GeneratorModel(generator, AttributeEmbedding(gcfg.mapping.z_dim),
                           WEncoder(num_ws=generator.num_ws, w_dim=gcfg.mapping.w_dim,
                                   input_size=teacher.encoder.config.input_size))
    return model, teacher


def _losses(model: GeneratorModel, teacher: EncoderModel, b: dict[str, Tensor], attrs: Tensor,
            cfg: GeneratorTrainConfig, rng: np.random.Generator) -> dict[str, Tensor]:
    g = model.generator
    rgb, cam = b["rgb"], b["camera"]
    n, t, _, s, _ = rgb.shape
    ws = model.ws_for(attrs)
    with torch.no_grad():
        g.mapping.update_w_avg(ws.detach())
    planes = g.synthesis(ws=ws)
    losses: dict[str, Tensor] = {}
    with torch.no_grad():
        teacher_planes = teacher.encoder(image=rgb[:, 0] * 2 - 1, camera=cam[:, 0]).planes
    # Relative L1: the encoder's plane features are tens of units large, so a plain L1 would drown
    # every image loss (and, through the shared gradient clip, slow the whole generator).
    losses["planes"] = (planes - teacher_planes).abs().mean() / teacher_planes.abs().mean().clamp_min(1e-6)

    rcfg = dataclasses.replace(g.config.render, resolution=s)
    bg = border_colour(rgb[:, 0]).repeat_interleave(t, dim=0)
    losses.update(patch_losses(render_patches(planes.repeat_interleave(t, dim=0), g.decoder, rcfg, b, cfg.patch, rng, bg)))

    # Super-resolution: the generator's own full render of view 0, 4x up, compared at the data's size.
    sr_s_codes = [layer.affine(ws[:, -1]) for layer in g._modulated_layers()[-6:]]
    full = g.render_planes(planes=planes, camera=cam[:, 0], sr_s_codes=sr_s_codes)
    sr01 = (full.image + 1) / 2
    op = F.interpolate(full.opacity, size=sr01.shape[-2:], mode="bilinear", align_corners=False)
    sr_comp = sr01 + (1 - op.clamp(0, 1)) * border_colour(rgb[:, 0])
    sr_small = F.adaptive_avg_pool2d(sr_comp, s)
    a0 = b["alpha"][:, 0]
    losses["sr"] = ((sr_small - rgb[:, 0]).abs() * (a0 + 0.25 * (1 - a0))).mean()

    w_pred = model.w_encoder(image=rgb[:, 0] * 2 - 1, w_avg=g.mapping.w_avg)
    losses["wcode"] = (w_pred - ws.detach()).pow(2).mean()
    return losses


def _weighted(losses: dict[str, Tensor], cfg: GeneratorTrainConfig) -> Tensor:
    w = {"rgb": cfg.w_rgb, "ssim": cfg.w_ssim, "opacity": cfg.w_opacity, "depth": cfg.w_depth,
         "semantic": cfg.w_semantic, "sr": cfg.w_sr, "planes": cfg.w_planes, "wcode": cfg.w_wcode}
    return sum((w[k] * v for k, v in losses.items()), torch.zeros(()))


def sample_grid(model: GeneratorModel, path: Path, *, seed: int = 12345, heads: int = 8,
                yaws: tuple[float, ...] = (-40.0, -20.0, 0.0, 20.0, 40.0), size: int = 64) -> None:
    """Rows: heads sampled from the prior; columns: a yaw orbit of the same code (identity must hold)."""
    from engine.camera import orbit_label

    g = model.generator
    dev = g.mapping.w_avg.device
    attrs = torch.from_numpy(np.stack([attribute_vector(h) for h in sample_records(seed, heads)])).to(dev)
    with torch.no_grad():
        ws = model.ws_for(attrs)
        planes = g.synthesis(ws=ws)
        rcfg = dataclasses.replace(g.config.render, resolution=size)
        cols = []
        for yaw in yaws:
            cam = torch.from_numpy(np.stack([orbit_label(yaw, 0.0)] * heads)).float().to(dev)
            out = render_image(planes=planes, decoder=g.decoder, config=rcfg, camera=cam, resolution=size)
            cols.append(out.composite(torch.full((heads, 3, 1, 1), 1.0, device=dev)))
    rows = [[common.to_uint8(c[i]) for c in cols] for i in range(heads)]
    common.save_grid(rows, path)


def validate(model: GeneratorModel, val: MultiView) -> dict[str, float]:
    """PSNR (head pixels) of the generator's raw 64^2 render of held-out heads' true attributes."""
    from engine.evaluation.recon import psnr

    g = model.generator
    n, k = val.heads, val.views
    dev = g.mapping.w_avg.device
    b = {key: v.to(dev) for key, v in val.batch(np.arange(n), np.tile(np.arange(k), (n, 1))).items()}
    attrs = attribute_batch([r["attributes"] for r in val.records]).to(dev)
    with torch.no_grad():
        planes = g.synthesis(ws=model.ws_for(attrs)).repeat_interleave(k, dim=0)
        rcfg = dataclasses.replace(g.config.render, resolution=val.size)
        out = render_image(planes=planes, decoder=g.decoder, config=rcfg, camera=b["camera"].reshape(n * k, 25),
                           resolution=val.size)
        bg = border_colour(b["rgb"][:, 0]).repeat_interleave(k, dim=0)
        gt = b["rgb"].reshape(n * k, 3, val.size, val.size)
        mask = (b["alpha"].reshape(n * k, 1, val.size, val.size) > 0.5).float()
        p = psnr(out.composite(bg), gt, mask)
        w_pred = model.w_encoder(image=b["rgb"][:, 0] * 2 - 1, w_avg=g.mapping.w_avg)
        w_true = model.ws_for(attrs)
        w_err = (w_pred - w_true).pow(2).mean() / w_true.var().clamp_min(1e-8)
    return {"val_psnr_heldout_attributes": float(p.mean()), "val_wcode_rel_mse": float(w_err)}


def train_generator(cfg: GeneratorTrainConfig, *, progress: bool = True, stop_at: int | None = None) -> dict[str, Any]:
    """Run (or resume) a generator run; returns the summary written to ``out/summary.json``."""
    from engine.evaluation.recon import heldout_views

    common.setup_cpu(cfg.threads)
    rng = common.seed_everything(cfg.seed)
    model, teacher = build(cfg)
    model.to(cfg.device)
    teacher.to(cfg.device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(trainable, lr=cfg.lr, betas=(0.0, 0.99))
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    modules = {"generator": model.generator, "embedding": model.embedding, "w_encoder": model.w_encoder}
    step, history, wall = 0, [], 0.0
    if common.has_checkpoint(out):
        state = common.load_checkpoint(out, modules=modules, optimizer=opt, rng=rng)
        step, history, wall = state["step"], state["history"], float(state["extra"].get("wall_s", 0.0))
        log.info("resuming %s at step %d", out, step)
    data = load_multiview(cfg.data, max_heads=cfg.max_heads)
    attrs_all = attribute_batch([r["attributes"] for r in data.records])
    val = heldout_views(90_002, cfg.val_heads, data.size)
    log.info("generator %d params (+ embedding %d, W encoder %d); decoder frozen from %s",
             sum(p.numel() for p in model.generator.parameters() if p.requires_grad),
             sum(p.numel() for p in model.embedding.parameters()),
             sum(p.numel() for p in model.w_encoder.parameters()), cfg.encoder_run)

    def save() -> None:
        common.save_checkpoint(out, modules=modules, optimizer=opt, rng=rng, step=step, history=history,
                               extra={"wall_s": wall, "config": {k: (str(v) if isinstance(v, Path) else v)
                                                                  for k, v in dataclasses.asdict(cfg).items()}})
        common.plot_history(history, out / "losses.png", "generator")

    from tqdm import tqdm

    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc="generator", dynamic_ncols=True)
    running: dict[str, float] = {}
    skipped = 0
    model.train()
    while step < cfg.steps:
        if stop_at is not None and step >= stop_at:  # an interruption, for tests of resume
            save()
            bar.close()
            return {"steps": step, "stopped": True}
        t0 = time.perf_counter()
        lr = common.cosine_lr(step, cfg.steps, cfg.lr)
        for gr in opt.param_groups:
            gr["lr"] = lr
        heads = rng.choice(data.heads, size=cfg.batch, replace=False)
        views = np.stack([rng.permutation(data.views)[: cfg.views] for _ in range(cfg.batch)])
        batch = {k: v.to(cfg.device) for k, v in data.batch(heads, views).items()}
        with torch.autocast(device_type=torch.device(cfg.device).type, dtype=torch.bfloat16, enabled=cfg.amp):
            losses = _losses(model, teacher, batch, attrs_all[torch.from_numpy(heads)].to(cfg.device), cfg, rng)
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
        norm = torch.nn.utils.clip_grad_norm_(trainable, 5.0)
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
        if step % LOG_EVERY == 0 or step == cfg.steps:
            count = (step - 1) % LOG_EVERY + 1
            history.append({"step": step, **{k: v / count for k, v in running.items()}})
            running.clear()
            bar.set_postfix(loss=f"{history[-1]['total']:.4f}")
        if step % cfg.val_every == 0 or step == cfg.steps:
            model.eval()
            history.append({"step": step, **validate(model, val)})
            sample_grid(model, out / "samples.png")
            model.train()
            log.info("step %d: %s", step, {k: round(v, 4) for k, v in history[-1].items()})
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save()
    bar.close()
    model.eval()
    summary = {
        "trainer": "tricam train generator",
        "steps": step,
        "wall_s": round(wall, 1),
        "seconds_per_step": round(wall / max(step, 1), 3),
        "skipped_non_finite_steps": skipped,
        "final_losses": next((h for h in reversed(history) if "total" in h), {}),
        "validation": validate(model, val),
        "data": {"path": str(cfg.data), "heads": data.heads, "views": data.views, "size": data.size},
        "encoder_run": str(cfg.encoder_run),
        "generator_config": config_to_dict(model.generator.config),
    }
    common.write_json(out / "summary.json", summary)
    return summary
