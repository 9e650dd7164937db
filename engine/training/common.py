"""What every trainer shares: seeds, checkpoints that resume bit-exactly, plots, grids, summaries.

Checkpoints are safetensors (model and optimiser tensors, torch RNG state) plus a JSON
sidecar (step, numpy RNG state, loss history, config). Nothing is pickled, so a checkpoint
from an untrusted place cannot run code. Writes go to a temporary name first and are
renamed, so a run killed mid-write keeps its previous checkpoint.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

log = logging.getLogger(__name__)

CKPT_TENSORS = "checkpoint.safetensors"
CKPT_STATE = "checkpoint.json"


class TrainingError(Exception):
    """A trainer cannot start or continue (bad data, a checkpoint that does not fit ...)."""


def seed_everything(seed: int) -> np.random.Generator:
    """Seed torch, numpy and random; returns the numpy generator the trainer draws batches from."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    return np.random.default_rng(seed)


def setup_cpu(threads: int | None) -> None:
    """Flush denormals (a 2x slowdown on this CPU otherwise) and pick the thread count."""
    torch.set_flush_denormal(True)
    if threads:
        torch.set_num_threads(threads)


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, Tensor):
                tensors[f"opt.{pid}.{k}"] = v
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_load(opt: torch.optim.Optimizer, tensors: Mapping[str, Tensor], meta: Mapping[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if not key.startswith("opt."):
            continue
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = v
    for key, v in meta["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(
    directory: Path,
    *,
    modules: Mapping[str, nn.Module],
    optimizer: torch.optim.Optimizer,
    rng: np.random.Generator,
    step: int,
    history: Sequence[Mapping[str, float]],
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Everything needed to continue exactly where this step ended."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, Tensor] = {}
    for name, m in modules.items():
        for k, v in m.state_dict().items():
            tensors[f"model.{name}.{k}"] = v
    opt_tensors, opt_meta = _optimizer_tensors(optimizer)
    tensors.update(opt_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    tmp = directory / (CKPT_TENSORS + ".tmp")
    save_file({k: v.detach().contiguous().clone() for k, v in tensors.items()}, str(tmp))
    state = {
        "step": step,
        "numpy_rng": rng.bit_generator.state,
        "python_rng": _py_random_state(),
        "optimizer": opt_meta,
        "history": list(history),
        "extra": dict(extra or {}),
    }
    tmp_json = directory / (CKPT_STATE + ".tmp")
    tmp_json.write_text(json.dumps(state))
    os.replace(tmp, directory / CKPT_TENSORS)
    os.replace(tmp_json, directory / CKPT_STATE)


def _py_random_state() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def has_checkpoint(directory: Path) -> bool:
    return (directory / CKPT_TENSORS).is_file() and (directory / CKPT_STATE).is_file()


def load_checkpoint(
    directory: Path,
    *,
    modules: Mapping[str, nn.Module],
    optimizer: torch.optim.Optimizer | None,
    rng: np.random.Generator | None,
) -> dict[str, Any]:
    """Restore modules, optimiser and RNGs in place; returns the JSON state (step, history, extra).

    Raises:
        TrainingError: missing files, or weights that do not fit the modules.
    """
    if not has_checkpoint(directory):
        raise TrainingError(f"no checkpoint in {directory}")
    tensors = load_file(str(directory / CKPT_TENSORS))
    state: dict[str, Any] = json.loads((directory / CKPT_STATE).read_text())
    for name, m in modules.items():
        prefix = f"model.{name}."
        sd = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            m.load_state_dict(sd, strict=True)
        except RuntimeError as e:
            raise TrainingError(f"checkpoint {directory}: {name} does not fit this model: {e}") from e
    if optimizer is not None:
        _optimizer_load(optimizer, tensors, state["optimizer"])
    if rng is not None:
        rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(tensors["rng.torch"])
        version, internal, gauss = state["python_rng"]
        random.setstate((version, tuple(internal), gauss))
    return state


def cosine_lr(step: int, total: int, base: float, *, warmup: int = 100, floor: float = 0.1) -> float:
    """Linear warm-up, then cosine decay to ``floor * base``."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))


def plot_history(history: Sequence[Mapping[str, float]], path: Path, title: str) -> None:
    """Loss curves (log scale) and validation figures as a PNG."""
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for h in history for k in h if k != "step"})
    loss_keys = [k for k in keys if not k.startswith("val_")]
    val_keys = [k for k in keys if k.startswith("val_")]
    fig, axes = plt.subplots(1, 2 if val_keys else 1, figsize=(12 if val_keys else 7, 4.5), squeeze=False)
    ax = axes[0, 0]
    for k in loss_keys:
        pts = [(h["step"], h[k]) for h in history if k in h and h[k] > 0]
        if pts:
            ax.plot(*zip(*pts, strict=True), label=k, lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title(f"{title}: training losses")
    ax.legend(fontsize=7)
    if val_keys:
        ax = axes[0, 1]
        for k in val_keys:
            pts = [(h["step"], h[k]) for h in history if k in h]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=k)
        ax.set_xlabel("step")
        ax.set_title("held-out heads")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def to_uint8(x: Tensor) -> np.ndarray:
    """``(3, H, W)`` or ``(H, W)`` in [0, 1] -> uint8 HWC / HW."""
    a = (x.detach().clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()
    return a.transpose(1, 2, 0) if a.ndim == 3 else a


def save_grid(rows: Sequence[Sequence[np.ndarray]], path: Path, scale: int = 2) -> None:
    """Rows of equally sized uint8 RGB images -> one PNG (nearest-neighbour upscaled)."""
    from PIL import Image

    h, w = rows[0][0].shape[:2]
    ncol = max(len(r) for r in rows)
    sheet = np.full((len(rows) * (h + 2), ncol * (w + 2), 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            if img.ndim == 2:
                img = np.repeat(img[..., None], 3, axis=2)
            sheet[i * (h + 2): i * (h + 2) + h, j * (w + 2): j * (w + 2) + w] = img
    im = Image.fromarray(sheet)
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
    im.save(path)


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
