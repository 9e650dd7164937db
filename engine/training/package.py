"""Pack an encoder run and a generator run into one ``tricam-core`` bundle, with provenance and figures."""

from __future__ import annotations

import json
import logging
import platform
import time
from pathlib import Path
from typing import Any

import torch

from engine.evaluation.recon import evaluate, heldout_views
from engine.training import common
from engine.training.generator import GeneratorTrainConfig, build
from engine.triplane.core import CoreModel, save_core

log = logging.getLogger(__name__)


def _run_info(run: Path) -> dict[str, Any]:
    state = json.loads((run / common.CKPT_STATE).read_text())
    info: dict[str, Any] = {"run": str(run), "steps": state["step"], "wall_s": round(float(state["extra"].get("wall_s", 0)), 1),
                            "config": state["extra"].get("config", {})}
    summary = run / "summary.json"
    if summary.is_file():
        info["validation"] = json.loads(summary.read_text()).get("validation", {})
    return info


def package_core(encoder_run: Path, generator_run: Path, out: Path, *, preset: str = "tiny",
                 eval_seed: int = 424242, eval_count: int = 64) -> dict[str, Any]:
    """Load both runs, check they share the decoder, evaluate, and write the bundle."""
    if not common.has_checkpoint(generator_run):
        raise common.TrainingError(f"{generator_run}: no generator checkpoint")
    gcfg = GeneratorTrainConfig(data=generator_run, out=generator_run, encoder_run=encoder_run, preset=preset)
    model, teacher = build(gcfg)
    common.load_checkpoint(generator_run, modules={"generator": model.generator, "embedding": model.embedding,
                                                   "w_encoder": model.w_encoder}, optimizer=None, rng=None)
    for k, v in teacher.decoder.state_dict().items():
        if not torch.equal(v, model.generator.decoder.state_dict()[k]):
            raise common.TrainingError(f"{generator_run} was not trained against {encoder_run}'s decoder ({k} differs)")
    core = CoreModel(generator=model.generator.eval(), encoder=teacher.encoder.eval(),
                     w_encoder=model.w_encoder.eval(), embedding=model.embedding.eval(),
                     render_resolution=teacher.render_cfg.resolution, provenance={})
    t0 = time.perf_counter()
    figures = evaluate(core.reconstruct, heldout_views(eval_seed, eval_count), batch=8)
    log.info("held-out figures (%d heads, %.0f s): %s", eval_count, time.perf_counter() - t0, figures)
    enc_info, gen_info = _run_info(encoder_run), _run_info(generator_run)
    provenance = {
        "what": "tiny tri-plane core trained from scratch on procedural synthetic heads on a 2-core CPU; "
                "small because the machine is small, not a model of real faces",
        "trainers": {"encoder": enc_info, "generator": gen_info},
        "data": {"recipe": "tricam synth --count 6000 --views 4 --size 64 --seed 1000",
                 "encoder_data": enc_info["config"].get("data"), "generator_data": gen_info["config"].get("data")},
        "evaluation": {"command": f"tricam eval recon --seed {eval_seed} --count {eval_count} --json",
                       **{k: v for k, v in figures.items()}},
        "semantic_head": "trained against the synthetic label maps (background = 1 - opacity)",
        "made": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
    }
    return save_core(out, core, preset=preset, provenance=provenance)
