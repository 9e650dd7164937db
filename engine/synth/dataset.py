"""Synthetic-head datasets on disk: safetensors shards, a JSON index, a card and a contact sheet.

Layout of ``out/``::

    index.json              format, settings, class table, shard list
    card.json               counts and attribute / pose / class histograms
    contact_sheet.png       the first images (and label maps) at a glance
    shard-00000.safetensors images (B,S,S,3) uint8, depth (B,S,S) float16, labels (B,S,S) uint8,
                            alpha (B,S,S) uint8, cameras (B,25) float32; metadata["records"] is a
                            JSON list of per-image records (ids, attributes, caption, pose, edit)

No pickle anywhere: safetensors holds only arrays and a string map.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine import camera
from engine.synth import params as P
from engine.synth.render import BACKGROUND_DEPTH, render

log = logging.getLogger(__name__)

FORMAT = "tricam-synth/1"
INDEX_FILE = "index.json"
CARD_FILE = "card.json"
SHEET_FILE = "contact_sheet.png"
SHARD_GLOB = "shard-*.safetensors"
MIN_SIZE, MAX_SIZE = 16, 1024

# Colours for label maps on the contact sheet (index = SemanticClass value).
CLASS_COLORS = np.array(
    [
        [0, 0, 0], [230, 180, 150], [120, 70, 30], [60, 120, 255], [60, 30, 10], [220, 40, 60],
        [255, 120, 0], [250, 220, 60], [80, 220, 220], [130, 130, 130], [170, 90, 200], [40, 160, 70],
    ],
    dtype=np.uint8,
)


@dataclass(frozen=True)
class SynthConfig:
    """What to render. ``count`` is heads (views mode), clips (video mode) or pairs (pairs mode)."""

    count: int
    size: int = 64
    seed: int = 0
    views: int = 1
    video: int = 0
    pairs: bool = False
    batch: int = 0  # images per render call; 0 = automatic
    shard_size: int = 1000
    supersample: int = 1
    prior: P.Prior = field(default_factory=P.Prior)

    @property
    def mode(self) -> str:
        return "pairs" if self.pairs else ("video" if self.video else "views")

    @property
    def images(self) -> int:
        if self.pairs:
            return 2 * self.count
        return self.count * (self.video if self.video else self.views)

    def validate(self) -> None:
        if self.count < 1:
            raise ValueError(f"count must be >= 1, got {self.count}")
        if not MIN_SIZE <= self.size <= MAX_SIZE:
            raise ValueError(f"size must be in [{MIN_SIZE}, {MAX_SIZE}], got {self.size}")
        if self.views < 1:
            raise ValueError(f"views must be >= 1, got {self.views}")
        if self.video < 0:
            raise ValueError(f"video must be >= 0 frames, got {self.video}")
        modes = (self.views > 1) + (self.video > 0) + bool(self.pairs)
        if modes > 1:
            raise ValueError("choose at most one of --views K (K > 1), --video FRAMES and --pairs")
        if self.batch < 0 or self.shard_size < 1:
            raise ValueError("batch must be >= 0 and shard_size >= 1")
        if not 1 <= self.supersample <= 4:
            raise ValueError(f"supersample must be in [1, 4], got {self.supersample}")
        self.prior.validate()

    def auto_batch(self) -> int:
        if self.batch:
            return self.batch
        return max(2, min(256, (64 * 64 * 64) // (self.size * self.size)))


@dataclass(frozen=True)
class Job:
    """One image to render: the head record, the camera pose and its bookkeeping."""

    head: P.HeadParams
    pose: P.Pose
    meta: dict[str, Any]


def jobs(cfg: SynthConfig) -> Iterator[list[Job]]:
    """Render groups in dataset order. Pairs come as [before, after] groups of 2."""
    for i in range(cfg.count):
        head = P.sample_head(cfg.seed, i, cfg.prior)
        if cfg.pairs:
            rng = P.stream(cfg.seed, i, "edit")
            kind = P.EDIT_KINDS[int(rng.integers(len(P.EDIT_KINDS)))]
            after = P.make_edit(head, kind, rng)
            pose = P.sample_views(cfg.seed, i, 1, cfg.prior)[0]
            cls = sorted(int(c) for c in P.edit_classes(kind, head, after))
            meta = {"head": i, "pair": i, "edit": kind, "edit_classes": cls}
            yield [Job(head, pose, {**meta, "side": "before"}), Job(after, pose, {**meta, "side": "after"})]
        elif cfg.video:
            recs, poses = P.sample_video(cfg.seed, i, cfg.video, head, cfg.prior)
            yield [Job(r, p, {"head": i, "frame": f}) for f, (r, p) in enumerate(zip(recs, poses, strict=True))]
        else:
            poses = P.sample_views(cfg.seed, i, cfg.views, cfg.prior)
            yield [Job(head, p, {"head": i, "view": v}) for v, p in enumerate(poses)]


def pose_label(pose: P.Pose) -> np.ndarray:
    """(25,) EG3D label of an orbit pose."""
    return camera.orbit_label(pose.yaw_deg, pose.pitch_deg, pose.roll_deg)


def render_jobs(
    batch: Sequence[Job], size: int, supersample: int = 1, device: str | torch.device = "cpu"
) -> dict[str, np.ndarray]:
    """Render jobs to shard arrays. Pairs render as two calls (all befores, all afters) with the
    same layout, so each pair's two images go through identical arithmetic."""
    labels = np.stack([pose_label(j.pose) for j in batch]).astype(np.float32)
    befores = [k for k, j in enumerate(batch) if j.meta.get("side") != "after"]
    afters = [k for k, j in enumerate(batch) if j.meta.get("side") == "after"]
    groups = [befores, afters] if afters else [befores]
    out: dict[str, np.ndarray] = {
        "images": np.zeros((len(batch), size, size, 3), np.uint8),
        "depth": np.zeros((len(batch), size, size), np.float16),
        "labels": np.zeros((len(batch), size, size), np.uint8),
        "alpha": np.zeros((len(batch), size, size), np.uint8),
        "cameras": labels,
    }
    for idx in groups:
        if not idx:
            continue
        r = render([batch[k].head for k in idx], torch.from_numpy(labels[idx]), size, supersample, device)
        out["images"][idx] = (r.rgb.permute(0, 2, 3, 1) * 255 + 0.5).clamp(0, 255).to(torch.uint8).cpu().numpy()
        out["depth"][idx] = r.depth[:, 0].cpu().numpy().astype(np.float16)
        out["labels"][idx] = r.label.cpu().numpy()
        out["alpha"][idx] = (r.alpha[:, 0] * 255 + 0.5).to(torch.uint8).cpu().numpy()
    return out


def _record(job: Job, image_id: int) -> dict[str, Any]:
    p = job.pose
    return {
        "id": image_id, **job.meta, "caption": P.caption(job.head),
        "pose": {"yaw_deg": p.yaw_deg, "pitch_deg": p.pitch_deg, "roll_deg": p.roll_deg},
        "attributes": job.head.to_dict(),
    }


def prepare_out_dir(out: Path, overwrite: bool) -> None:
    """Create ``out``; refuse a non-empty one unless ``overwrite`` (then remove our own files only)."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    existing = list(out.iterdir())
    if existing and not overwrite:
        raise FileExistsError(f"{out} is not empty ({len(existing)} entries); pass --overwrite or pick another")
    if overwrite:
        for f in [*out.glob(SHARD_GLOB), out / INDEX_FILE, out / CARD_FILE, out / SHEET_FILE]:
            if f.exists():
                f.unlink()


def _write_shard(path: Path, arrays: dict[str, np.ndarray], records: list[dict[str, Any]]) -> None:
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path),
              metadata={"format": FORMAT, "records": json.dumps(records)})


def load_shard(path: str | Path) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """Arrays and per-image records of one shard."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    with safe_open(str(path), framework="np") as f:
        meta = f.metadata() or {}
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} shard")
    return load_file(str(path)), json.loads(meta["records"])


def load_index(out: str | Path) -> dict[str, Any]:
    path = Path(out) / INDEX_FILE
    index: dict[str, Any] = json.loads(path.read_text())
    if index.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} index")
    return index


class _Card:
    """Running counts for card.json."""

    def __init__(self) -> None:
        self.c: dict[str, Counter[str]] = {}
        self.class_pixels = np.zeros(P.NUM_CLASSES, np.int64)
        self.class_images = np.zeros(P.NUM_CLASSES, np.int64)

    def add(self, name: str, value: object) -> None:
        self.c.setdefault(name, Counter())[str(value)] += 1

    def update(self, batch: Sequence[Job], labels: np.ndarray) -> None:
        for j in batch:
            h, e = j.head, j.head.expression
            self.add("hairstyle", h.hair.style)
            self.add("hair_color", h.hair.color)
            self.add("beard", h.beard.style)
            self.add("glasses", h.glasses.kind)
            self.add("frame_shape", h.glasses.frame_shape)
            self.add("skin", P.skin_name(h.skin_tone))
            self.add("iris", h.eyes.iris)
            self.add("background", h.scene.background)
            self.add("smile", e.smile > P.THRESHOLDS["smile"])
            self.add("mouth_open", e.mouth_open > P.THRESHOLDS["mouth_open"])
            self.add("eyes_closed", e.eye_open < P.THRESHOLDS["eyes_closed"])
            self.add("brows_raised", e.brow_raise > P.THRESHOLDS["brow_raise"])
            self.add("yaw_bin_10deg", int(np.floor(j.pose.yaw_deg / 10) * 10))
            self.add("pitch_bin_10deg", int(np.floor(j.pose.pitch_deg / 10) * 10))
            if "edit" in j.meta and j.meta.get("side") == "after":
                self.add("edit", j.meta["edit"])
        counts = np.stack([np.bincount(lab.ravel(), minlength=P.NUM_CLASSES) for lab in labels])
        self.class_pixels += counts.sum(0)
        self.class_images += (counts > 0).sum(0)

    def to_json(self, images: int) -> dict[str, Any]:
        names = [c.name.lower() for c in P.SemanticClass]
        total = max(int(self.class_pixels.sum()), 1)
        return {
            "images": images,
            "histograms": {k: dict(sorted(v.items())) for k, v in self.c.items()},
            "class_pixel_fraction": {n: float(x) / total for n, x in zip(names, self.class_pixels, strict=True)},
            "class_image_count": {n: int(x) for n, x in zip(names, self.class_images, strict=True)},
        }


def contact_sheet(images: np.ndarray, labels: np.ndarray, columns: int = 8) -> np.ndarray:
    """(H, W, 3) uint8 grid: rows of RGB images, then one row of their label maps."""
    n = len(images)
    if n == 0:
        raise ValueError("contact_sheet needs at least one image")
    s = images.shape[1]
    columns = min(columns, n)
    rows = -(-n // columns)
    sheet = np.full(((rows + 1) * s, columns * s, 3), 255, np.uint8)
    for k in range(n):
        r, c = divmod(k, columns)
        sheet[r * s: (r + 1) * s, c * s: (c + 1) * s] = images[k]
    for c in range(columns):
        sheet[rows * s:, c * s: (c + 1) * s] = CLASS_COLORS[labels[c]]
    return sheet


def generate(
    cfg: SynthConfig,
    out: str | Path,
    overwrite: bool = False,
    device: str | torch.device = "cpu",
    progress: Callable[[int], None] | None = None,
    sheet_images: int = 48,
) -> dict[str, Any]:
    """Render the dataset ``cfg`` into ``out``; returns the index (also written to index.json).

    ``progress(n)`` is called with the number of images finished after each render batch.
    """
    cfg.validate()
    out = Path(out)
    prepare_out_dir(out, overwrite)
    per_batch = cfg.auto_batch()
    shards: list[dict[str, Any]] = []
    pending: dict[str, list[np.ndarray]] = {}
    pending_recs: list[dict[str, Any]] = []
    card = _Card()
    sheet_rgb: list[np.ndarray] = []
    sheet_lab: list[np.ndarray] = []
    next_id = 0
    t0 = time.perf_counter()

    def flush() -> None:
        if not pending_recs:
            return
        name = f"shard-{len(shards):05d}.safetensors"
        arrays = {k: np.concatenate(v) for k, v in pending.items()}
        _write_shard(out / name, arrays, pending_recs)
        shards.append({"file": name, "first": pending_recs[0]["id"], "count": len(pending_recs)})
        pending.clear()
        pending_recs.clear()

    def run_batch(batch: list[Job]) -> None:
        nonlocal next_id
        arrays = render_jobs(batch, cfg.size, cfg.supersample, device)
        card.update(batch, arrays["labels"])
        if sum(len(x) for x in sheet_rgb) < sheet_images:
            sheet_rgb.append(arrays["images"])
            sheet_lab.append(arrays["labels"])
        start = 0
        while start < len(batch):  # split at shard boundaries
            room = cfg.shard_size - len(pending_recs)
            take = min(room, len(batch) - start)
            for k, v in arrays.items():
                pending.setdefault(k, []).append(v[start: start + take])
            pending_recs.extend(_record(j, next_id + start + i) for i, j in enumerate(batch[start: start + take]))
            start += take
            if len(pending_recs) >= cfg.shard_size:
                flush()
        next_id += len(batch)
        if progress is not None:
            progress(len(batch))

    batch: list[Job] = []
    for group in jobs(cfg):
        batch.extend(group)  # groups (pairs) never split across render calls
        if len(batch) >= per_batch:
            run_batch(batch)
            batch = []
    if batch:
        run_batch(batch)
    flush()
    seconds = time.perf_counter() - t0

    rgb = np.concatenate(sheet_rgb)[:sheet_images]
    lab = np.concatenate(sheet_lab)[:sheet_images]
    from PIL import Image

    Image.fromarray(contact_sheet(rgb, lab)).save(out / SHEET_FILE)
    (out / CARD_FILE).write_text(json.dumps({"format": FORMAT, "mode": cfg.mode, **card.to_json(next_id)}, indent=1))
    index = {
        "format": FORMAT,
        "mode": cfg.mode,
        "count": next_id,
        "heads": cfg.count,
        "size": cfg.size,
        "seed": cfg.seed,
        "views": cfg.views,
        "video_frames": cfg.video,
        "supersample": cfg.supersample,
        "classes": {c.name.lower(): int(c) for c in P.SemanticClass},
        "background_depth": BACKGROUND_DEPTH,
        "camera": {"convention": "EG3D 25-number label (engine/camera.py)", "radius": camera.RADIUS,
                   "lookat": list(camera.LOOKAT), "focal": camera.FOCAL},
        "arrays": {"images": "uint8 (B,S,S,3)", "depth": "float16 (B,S,S) Euclidean along the ray",
                   "labels": "uint8 (B,S,S)", "alpha": "uint8 (B,S,S) 255 = surface",
                   "cameras": "float32 (B,25)"},
        "prior": json.loads(json.dumps(dataclasses.asdict(cfg.prior))),
        "shards": shards,
        "seconds": round(seconds, 3),
    }
    (out / INDEX_FILE).write_text(json.dumps(index, indent=1))
    log.info("wrote %d images in %d shards to %s (%.1f s, %.1f images/s)", next_id, len(shards), out, seconds,
             next_id / max(seconds, 1e-9))
    return index
